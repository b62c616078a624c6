//! Reports people can look at: one self-contained HTML page (every image inlined), the same
//! tables in Markdown, and JSON; per-clip contact sheets (PNG) and animations (GIF).
//!
//! A report shows one evaluation, or several side by side on the same prompts (`reel eval
//! compare`), with a difference column when there are two.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use reel_media::{contact_sheet, EncodeOptions, Frame, Rational, VideoFormat};
use serde::Serialize;

use crate::adherence::{Attribute, Confusion};
use crate::error::{io_err, EvalError, Result};
use crate::evaluate::Evaluation;
use reel_media::write_atomic;

/// What a report wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub sheets: Vec<PathBuf>,
}

/// Frames per contact sheet row.
const SHEET_FRAMES: usize = 8;

/// Writes `report.html`, `report.md`, `report.json`, `sheets/` and `clips/` into `out` for one
/// or more named evaluations of the same prompts (at most `max_clips` clips are shown).
pub fn write_report(evaluations: &[(String, Evaluation)], out: &Path, max_clips: usize) -> Result<Written> {
    assert!(!evaluations.is_empty(), "a report needs an evaluation");
    let first = &evaluations[0].1;
    for (_, other) in &evaluations[1..] {
        if other.clips.len() != first.clips.len() {
            return Err(EvalError::Mismatch { index: first.clips.len().min(other.clips.len()), a: format!("{} clips", first.clips.len()), b: format!("{} clips", other.clips.len()) });
        }
        if let Some((i, (a, b))) = first.clips.iter().zip(&other.clips).enumerate().find(|(_, (a, b))| a.caption != b.caption) {
            return Err(EvalError::Mismatch { index: i, a: a.caption.clone(), b: b.caption.clone() });
        }
    }
    // Decode every shown clip before writing anything.
    let shown = first.clips.len().min(max_clips);
    let mut media: Vec<Vec<Vec<Frame>>> = Vec::new();
    for (_, evaluation) in evaluations {
        media.push((0..shown).map(|i| evaluation.frames(i)).collect::<Result<_>>()?);
    }

    for dir in [out.to_path_buf(), out.join("sheets"), out.join("clips")] {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    // Per clip and evaluation: the sheet (PNG) and the animation (GIF), as files and inline.
    let mut sheets = Vec::new();
    let mut inline: Vec<Vec<(String, String, String)>> = Vec::new();
    for i in 0..shown {
        let mut row = Vec::new();
        for (k, frames) in media.iter().enumerate() {
            let stem = if evaluations.len() == 1 { format!("clip-{i:03}") } else { format!("clip-{i:03}-{k}") };
            let sheet_path = out.join("sheets").join(format!("{stem}.png"));
            let picked = pick_frames(&frames[i], SHEET_FRAMES);
            let sheet = contact_sheet(&picked, SHEET_FRAMES, 2).unwrap_or_else(|| Frame::filled(16, 16, [0, 0, 0]));
            reel_media::write_png(&sheet_path, &sheet)?;
            let gif_path = out.join("clips").join(format!("{stem}.gif"));
            reel_media::write_video(&gif_path, Some(VideoFormat::Gif), Rational::integer(8), &frames[i], &EncodeOptions::default())?;
            let png = std::fs::read(&sheet_path).map_err(io_err(&sheet_path))?;
            let gif = std::fs::read(&gif_path).map_err(io_err(&gif_path))?;
            row.push((format!("sheets/{stem}.png"), base64(&png), base64(&gif)));
            sheets.push(sheet_path);
        }
        inline.push(row);
    }

    let html = render_html(evaluations, &inline);
    let markdown = render_markdown(evaluations, &inline);
    let json = serde_json::to_string_pretty(&json_summary(evaluations)).expect("serialises");
    Ok(Written {
        html: write_atomic(&out.join("report.html"), html.as_bytes())?,
        markdown: write_atomic(&out.join("report.md"), markdown.as_bytes())?,
        json: write_atomic(&out.join("report.json"), json.as_bytes())?,
        sheets,
    })
}

/// Up to `n` frames spread evenly over a clip (first and last included).
fn pick_frames(frames: &[Frame], n: usize) -> Vec<Frame> {
    if frames.len() <= n {
        return frames.to_vec();
    }
    (0..n).map(|k| frames[k * (frames.len() - 1) / (n - 1)].clone()).collect()
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    name: &'a str,
    source: &'a str,
    adherence: &'a crate::adherence::Summary,
    temporal: &'a crate::temporal::TemporalSummary,
}

fn json_summary(evaluations: &[(String, Evaluation)]) -> Vec<JsonEntry<'_>> {
    evaluations.iter().map(|(name, e)| JsonEntry { name, source: &e.source, adherence: &e.adherence, temporal: &e.temporal }).collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Metric rows: (label, value per evaluation, higher is better).
fn metric_rows(evaluations: &[(String, Evaluation)]) -> Vec<(String, Vec<f64>, bool)> {
    let mut rows = Vec::new();
    for attribute in Attribute::ALL {
        let values = evaluations.iter().map(|(_, e)| e.adherence.accuracy.get(attribute.name()).copied().unwrap_or(0.0)).collect();
        rows.push((format!("{} accuracy", attribute.name()), values, true));
    }
    rows.push(("all correct".into(), evaluations.iter().map(|(_, e)| e.adherence.all_correct).collect(), true));
    let t = |f: &dyn Fn(&crate::temporal::TemporalSummary) -> f32| evaluations.iter().map(|(_, e)| f(&e.temporal) as f64).collect::<Vec<_>>();
    rows.push(("flicker".into(), t(&|s| s.flicker), false));
    rows.push(("motion smoothness".into(), t(&|s| s.motion_smoothness), true));
    rows.push(("subject consistency".into(), t(&|s| s.subject_consistency), true));
    rows.push(("dynamic degree".into(), t(&|s| s.dynamic_degree), true));
    // The Fréchet row only when every evaluation was measured against the same reference.
    let distances: Vec<_> = evaluations.iter().filter_map(|(_, e)| e.frechet.as_ref()).collect();
    if let Some(first) = distances.first().filter(|f| distances.len() == evaluations.len() && distances.iter().all(|d| d.reference == f.reference && d.distance.network == f.distance.network)) {
        let label = format!("Fréchet distance to {} ({})", first.reference, first.distance.network);
        rows.push((label, distances.iter().map(|d| d.distance.frechet).collect(), false));
    }
    rows
}

const SERIES_COLOURS: [&str; 4] = ["#3b6fd4", "#e0803a", "#3aa657", "#9a4fc4"];

/// Grouped bars of per-attribute accuracy (0–1), one colour per evaluation, as inline SVG.
fn accuracy_chart(evaluations: &[(String, Evaluation)]) -> String {
    let attributes = Attribute::ALL;
    let (bar, gap, height, left, top) = (14.0, 34.0, 160.0, 34.0, 10.0);
    let group = bar * evaluations.len() as f64 + gap;
    let width = left + group * attributes.len() as f64 + 10.0;
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img" aria-label="accuracy per attribute">"#, height + top + 40.0);
    for k in 0..=4 {
        let v = k as f64 / 4.0;
        let y = top + height * (1.0 - v);
        let _ = write!(svg, r##"<line x1="{left}" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="10" text-anchor="end">{v:.2}</text>"##, left - 4.0, y + 3.0);
    }
    for (a, attribute) in attributes.iter().enumerate() {
        let x0 = left + gap / 2.0 + group * a as f64;
        for (k, (_, e)) in evaluations.iter().enumerate() {
            let v = e.adherence.accuracy.get(attribute.name()).copied().unwrap_or(0.0);
            let h = height * v;
            let _ = write!(svg, r#"<rect x="{}" y="{}" width="{bar}" height="{h}" fill="{}"><title>{}: {v:.3}</title></rect>"#, x0 + bar * k as f64, top + height - h, SERIES_COLOURS[k % 4], attribute.name());
        }
        let _ = write!(svg, r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#, x0 + bar * evaluations.len() as f64 / 2.0, top + height + 16.0, attribute.name());
    }
    svg.push_str("</svg>");
    svg
}

fn confusion_html(confusion: &Confusion) -> String {
    // Only rows and columns that occur.
    let used: Vec<usize> = (0..confusion.values.len()).filter(|&i| confusion.counts[i].iter().sum::<u64>() > 0 || confusion.counts.iter().any(|r| r[i] > 0)).collect();
    let max = confusion.counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut html = String::from("<table class=\"confusion\"><tr><th>asked \\ read</th>");
    for &j in &used {
        let _ = write!(html, "<th>{}</th>", escape(&confusion.values[j]));
    }
    html.push_str("</tr>");
    for &i in &used {
        let _ = write!(html, "<tr><th>{}</th>", escape(&confusion.values[i]));
        for &j in &used {
            let c = confusion.counts[i][j];
            let alpha = c as f64 / max;
            let hue = if i == j { "40,160,80" } else { "220,60,60" };
            let _ = write!(html, "<td style=\"background: rgba({hue},{alpha:.2})\">{}</td>", if c == 0 { String::new() } else { c.to_string() });
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

fn render_html(evaluations: &[(String, Evaluation)], inline: &[Vec<(String, String, String)>]) -> String {
    let names: Vec<String> = evaluations.iter().map(|(n, _)| escape(n)).collect();
    let title = if evaluations.len() == 1 { format!("Reel evaluation — {}", names[0]) } else { format!("Reel comparison — {}", names.join(" vs ")) };
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.ok {{ color: #1a7f37; }} .bad {{ color: #c62828; font-weight: 600; }}
img.anim {{ width: 128px; image-rendering: pixelated; }} img.sheet {{ max-width: 560px; image-rendering: pixelated; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
.confusions {{ display: flex; flex-wrap: wrap; gap: 16px; }}
</style></head><body><h1>{title}</h1>"#
    );
    for (name, e) in evaluations {
        let _ = write!(h, "<p><b>{}</b>: {} clips from <code>{}</code></p>", escape(name), e.clips.len(), escape(&e.source));
    }
    h.push_str("<h2>Summary</h2><table><tr><th>metric</th>");
    for n in &names {
        let _ = write!(h, "<th>{n}</th>");
    }
    if evaluations.len() == 2 {
        h.push_str("<th>difference</th>");
    }
    h.push_str("</tr>");
    for (label, values, higher_better) in metric_rows(evaluations) {
        let _ = write!(h, "<tr><td>{}</td>", escape(&label));
        for v in &values {
            let _ = write!(h, "<td class=\"num\">{v:.3}</td>");
        }
        if values.len() == 2 {
            let d = values[1] - values[0];
            let class = if d.abs() < 1e-9 { "" } else if (d > 0.0) == higher_better { "ok" } else { "bad" };
            let _ = write!(h, "<td class=\"num {class}\">{d:+.3}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>Accuracy per attribute</h2><div class=\"legend\">");
    for (k, n) in names.iter().enumerate() {
        let _ = write!(h, "<span style=\"background:{}\"></span>{n}", SERIES_COLOURS[k % 4]);
    }
    let _ = write!(h, "</div>{}", accuracy_chart(evaluations));
    for (name, e) in evaluations {
        let _ = write!(h, "<h2>Confusion matrices — {}</h2><div class=\"confusions\">", escape(name));
        for attribute in Attribute::ALL {
            if let Some(c) = e.adherence.confusion.get(attribute.name()) {
                let _ = write!(h, "<div><h3>{}</h3>{}</div>", attribute.name(), confusion_html(c));
            }
        }
        h.push_str("</div>");
    }
    h.push_str("<h2>Clips</h2><table><tr><th>#</th><th>prompt</th>");
    for n in &names {
        let _ = write!(h, "<th>{n}</th>");
    }
    h.push_str("</tr>");
    for (i, row) in inline.iter().enumerate() {
        let _ = write!(h, "<tr><td>{i}</td><td>{}</td>", escape(&evaluations[0].1.clips[i].caption));
        for (k, (_, png, gif)) in row.iter().enumerate() {
            let clip = &evaluations[k].1.clips[i];
            let _ = write!(h, "<td><img class=\"anim\" alt=\"clip {i}\" src=\"data:image/gif;base64,{gif}\"><br><img class=\"sheet\" alt=\"frames of clip {i}\" src=\"data:image/png;base64,{png}\"><br>");
            for check in &clip.score.checks {
                let class = if check.correct() { "ok" } else { "bad" };
                let text = if check.correct() { check.read.clone() } else { format!("{} → {}", check.expected, check.read) };
                let _ = write!(h, "<span class=\"{class}\">{}: {}</span> ", check.attribute.name(), escape(&text));
            }
            let t = &clip.temporal;
            let _ = write!(h, "<br><small>flicker {:.4} · smoothness {:.3} · consistency {:.3} · motion {:.4}</small></td>", t.flicker, t.motion_smoothness, t.subject_consistency, t.motion);
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></body></html>\n");
    h
}

fn render_markdown(evaluations: &[(String, Evaluation)], inline: &[Vec<(String, String, String)>]) -> String {
    let mut m = String::new();
    let names: Vec<&str> = evaluations.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(m, "# Reel {} — {}\n", if names.len() == 1 { "evaluation" } else { "comparison" }, names.join(" vs "));
    for (name, e) in evaluations {
        let _ = writeln!(m, "- **{name}**: {} clips from `{}`", e.clips.len(), e.source);
    }
    let _ = write!(m, "\n| metric | {} |", names.join(" | "));
    if names.len() == 2 {
        m.push_str(" difference |");
    }
    let _ = write!(m, "\n|---|{}", "---|".repeat(names.len()));
    if names.len() == 2 {
        m.push_str("---|");
    }
    m.push('\n');
    for (label, values, _) in metric_rows(evaluations) {
        let _ = write!(m, "| {label} |");
        for v in &values {
            let _ = write!(m, " {v:.3} |");
        }
        if values.len() == 2 {
            let _ = write!(m, " {:+.3} |", values[1] - values[0]);
        }
        m.push('\n');
    }
    m.push_str("\n## Clips\n\n");
    for (i, row) in inline.iter().enumerate() {
        let _ = writeln!(m, "{i}. {}", evaluations[0].1.clips[i].caption);
        for (k, (sheet, _, _)) in row.iter().enumerate() {
            let clip = &evaluations[k].1.clips[i];
            let wrong: Vec<String> = clip.score.checks.iter().filter(|c| !c.correct()).map(|c| format!("{} {} → {}", c.attribute.name(), c.expected, c.read)).collect();
            let verdict = if wrong.is_empty() { "all correct".to_string() } else { wrong.join("; ") };
            let _ = writeln!(m, "   - {}: {verdict}  \n     ![clip {i}]({sheet})", names[k]);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_by_hand() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn html_escaping() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }

    #[test]
    fn picks_first_and_last_frames() {
        let frames: Vec<Frame> = (0..17).map(|i| Frame::filled(2, 2, [i as u8, 0, 0])).collect();
        let picked = pick_frames(&frames, 8);
        assert_eq!(picked.len(), 8);
        assert_eq!(picked[0].pixel(0, 0)[0], 0);
        assert_eq!(picked[7].pixel(0, 0)[0], 16);
    }
}
