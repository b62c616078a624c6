//! Monitoring: `metrics.jsonl` (one JSON object per step) and `metrics.png` (the curves).

use std::io::Write;
use std::path::{Path, PathBuf};

use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub const FILE: &str = "metrics.jsonl";
pub const PLOT: &str = "metrics.png";

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub samples_per_s: f64,
    /// Peak resident memory of this process so far (MiB; 0 where unknown).
    pub peak_memory_mib: f64,
    pub stage: String,
    pub samples: u64,
    pub skipped: usize,
    pub seconds: f64,
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`; `None` elsewhere).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Appends step records; on resume, drops records past the checkpoint first.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    pub fn open(run: &Path, keep_through: u64) -> Result<Self> {
        let path = run.join(FILE);
        // Kept lines are copied verbatim (re-serialising parsed floats could change their last digit).
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(TrainError::Io { path, source: e }),
        };
        let mut kept = String::new();
        for line in text.lines() {
            if serde_json::from_str::<StepRecord>(line).is_ok_and(|r| r.step <= keep_through) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        std::fs::write(&path, kept).map_err(TrainError::io(&path))?;
        Ok(Self { path })
    }

    pub fn append(&self, record: &StepRecord) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.path).map_err(TrainError::io(&self.path))?;
        writeln!(f, "{}", serde_json::to_string(record).expect("serialises")).map_err(TrainError::io(&self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The records of a metrics file (none if it does not exist; a torn last line is ignored).
pub fn read(path: &Path) -> Result<Vec<StepRecord>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TrainError::Io { path: path.to_path_buf(), source: e }),
    }
}

// ------------------------------------------------------------------ plot

const W: u32 = 720;
const PANEL_H: u32 = 200;
const LEFT: u32 = 64;
const RIGHT: u32 = 16;
const TOP: u32 = 22;
const BOTTOM: u32 = 22;
const SCALE: u32 = 2;

/// 3×5 glyphs, one row per byte (bit 2 = left column).
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        'A' => [2, 5, 7, 5, 5],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'G' => [7, 4, 5, 5, 7],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [7, 5, 5, 5, 7],
        'P' => [7, 5, 7, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'S' => [7, 4, 7, 1, 7],
        'T' => [7, 2, 2, 2, 2],
        _ => [0; 5],
    }
}

struct Canvas(Frame);

impl Canvas {
    fn set(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        let (w, h) = (self.0.width() as i64, self.0.height() as i64);
        if x >= 0 && y >= 0 && x < w && y < h {
            let i = ((y * w + x) * 3) as usize;
            self.0.data_mut()[i..i + 3].copy_from_slice(&rgb);
        }
    }

    fn text(&mut self, x: u32, y: u32, s: &str, rgb: [u8; 3]) {
        for (k, c) in s.chars().enumerate() {
            let g = glyph(c);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for dy in 0..SCALE {
                            for dx in 0..SCALE {
                                let px = x + (k as u32 * 4 + col) * SCALE + dx;
                                self.set(px as i64, (y + row as u32 * SCALE + dy) as i64, rgb);
                            }
                        }
                    }
                }
            }
        }
    }

    fn line(&mut self, a: (f64, f64), b: (f64, f64), rgb: [u8; 3]) {
        let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.set((a.0 + (b.0 - a.0) * t).round() as i64, (a.1 + (b.1 - a.1) * t).round() as i64, rgb);
        }
    }
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 10_000.0) {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

/// A plot panel: title, the value drawn, and whether on a log scale.
type Panel = (&'static str, fn(&StepRecord) -> f64, bool);

/// Draws loss, gradient norm and learning rate against step into a PNG (log scale for the
/// first two; the loss also smoothed).
pub fn plot(records: &[StepRecord], out: &Path) -> Result<()> {
    let panels: [Panel; 3] =
        [("LOSS (LOG)", |r| r.loss, true), ("GRAD NORM (LOG)", |r| r.grad_norm, true), ("LR", |r| r.lr, false)];
    let mut c = Canvas(Frame::filled(W, PANEL_H * 3, [255, 255, 255]));
    let (first, last) = match (records.first(), records.last()) {
        (Some(a), Some(b)) => (a.step as f64, (b.step as f64).max(a.step as f64 + 1.0)),
        _ => (0.0, 1.0),
    };
    for (p, (title, get, log)) in panels.iter().enumerate() {
        let y0 = p as u32 * PANEL_H;
        let (px0, px1) = (LEFT as f64, (W - RIGHT) as f64);
        let (py0, py1) = ((y0 + TOP) as f64, (y0 + PANEL_H - BOTTOM) as f64);
        let values: Vec<(f64, f64)> = records
            .iter()
            .map(|r| (r.step as f64, get(r)))
            .filter(|(_, v)| v.is_finite() && (!log || *v > 0.0))
            .map(|(s, v)| (s, if *log { v.log10() } else { v }))
            .collect();
        let lo = values.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
        let hi = values.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, if hi > lo { hi } else { lo + 1.0 }) } else { (0.0, 1.0) };
        let to_px = |s: f64, v: f64| (px0 + (s - first) / (last - first) * (px1 - px0), py1 - (v - lo) / (hi - lo) * (py1 - py0));
        // Frame and grid.
        for k in 0..=4 {
            let y = py0 + (py1 - py0) * k as f64 / 4.0;
            c.line((px0, y), (px1, y), [225, 225, 225]);
        }
        c.line((px0, py0), (px0, py1), [0, 0, 0]);
        c.line((px0, py1), (px1, py1), [0, 0, 0]);
        c.text(LEFT, y0 + 4, title, [0, 0, 0]);
        let shown = |v: f64| if *log { 10f64.powf(v) } else { v };
        c.text(2, py0 as u32, &label(shown(hi)), [60, 60, 60]);
        c.text(2, py1 as u32 - 10, &label(shown(lo)), [60, 60, 60]);
        c.text(LEFT, py1 as u32 + 6, &format!("{}", first as u64), [60, 60, 60]);
        let end = format!("{}", last as u64);
        c.text(W - RIGHT - end.len() as u32 * 4 * SCALE, py1 as u32 + 6, &end, [60, 60, 60]);
        // Raw curve, then a smoothed one for the loss.
        for w in values.windows(2) {
            c.line(to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1), if p == 0 { [150, 180, 230] } else { [30, 90, 200] });
        }
        if p == 0 && values.len() > 2 {
            let alpha = (10.0 / values.len() as f64).clamp(0.02, 0.5);
            let mut s = values[0].1;
            let mut prev = to_px(values[0].0, s);
            for &(step, v) in &values[1..] {
                s = alpha * v + (1.0 - alpha) * s;
                let next = to_px(step, s);
                c.line(prev, next, [200, 40, 40]);
                prev = next;
            }
        }
    }
    let tmp = out.with_extension("png.tmp");
    reel_media::write_png(&tmp, &c.0)?;
    std::fs::rename(&tmp, out).map_err(TrainError::io(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, loss: f64) -> StepRecord {
        StepRecord { step, loss, grad_norm: 1.0, lr: 1e-3, samples_per_s: 1.0, peak_memory_mib: 1.0, stage: "main".into(), samples: step, skipped: 0, seconds: 0.0 }
    }

    #[test]
    fn resume_drops_records_past_the_checkpoint() {
        let run = tempfile::tempdir().unwrap();
        let log = MetricsLog::open(run.path(), 0).unwrap();
        for s in 1..=5 {
            log.append(&record(s, 1.0 / s as f64)).unwrap();
        }
        // A torn last line (killed mid-write) is ignored.
        std::fs::OpenOptions::new().append(true).open(log.path()).unwrap().write_all(b"{\"step\": 6, \"lo").unwrap();
        let log = MetricsLog::open(run.path(), 3).unwrap();
        let steps: Vec<u64> = read(log.path()).unwrap().iter().map(|r| r.step).collect();
        assert_eq!(steps, vec![1, 2, 3]);
    }

    #[test]
    fn the_plot_draws_the_curve() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<StepRecord> = (1..=50).map(|s| record(s, 2.0 / s as f64)).collect();
        let out = dir.path().join(PLOT);
        plot(&records, &out).unwrap();
        let img = reel_media::read_image(&out).unwrap();
        assert_eq!((img.width(), img.height()), (W, 3 * PANEL_H));
        // The loss falls: the curve starts high-left and ends low-right of the first panel.
        let coloured = |x: u32, y0: u32, y1: u32| (y0..y1).any(|y| { let p = img.pixel(x, y); p != [255, 255, 255] && p != [225, 225, 225] && p[2] > p[0] });
        assert!(coloured(LEFT + 2, TOP, TOP + 20), "no curve at the top left");
        assert!(coloured(W - RIGHT - 2, PANEL_H - BOTTOM - 20, PANEL_H - BOTTOM + 1), "no curve at the bottom right");
    }
}
