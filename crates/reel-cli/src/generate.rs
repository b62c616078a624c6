//! `reel generate`: a prompt or a JSON request → a video file and a sidecar JSON (docs/generate.md).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use reel_media::{EncodeOptions, Rational, VideoFormat, VideoSpec, VideoWriter};
use reel_pipelines::model::read_spec;
use reel_pipelines::request::resolve;
use reel_pipelines::layout::Layout;
use reel_pipelines::{settings, Model, Request, Resolved};
use serde_json::json;

use crate::cli::GenerateArgs;
use crate::commands::progress_bar;

/// The bundled model's name.
pub const BUNDLED: &str = "shapes-v1";

/// Where the bundled model may be: `$REEL_MODELS/shapes-v1`, `models/shapes-v1` under the
/// working directory, beside the binary, two levels up from it (`target/release/reel` in a
/// checkout), and in the source tree the binary was built from.
pub fn bundled_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os("REEL_MODELS") {
        out.push(PathBuf::from(dir).join(BUNDLED));
    }
    out.push(PathBuf::from("models").join(BUNDLED));
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push(exe_dir.join("models").join(BUNDLED));
        if let Some(root) = exe_dir.parent().and_then(Path::parent) {
            out.push(root.join("models").join(BUNDLED));
        }
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(BUNDLED));
    out
}

/// A model name or folder → its folder.
pub fn model_dir(model: &str) -> Result<PathBuf> {
    if model == BUNDLED {
        let candidates = bundled_candidates();
        return match candidates.iter().find(|c| c.join("model_index.json").is_file()) {
            Some(dir) => Ok(dir.clone()),
            None => {
                let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
                bail!("the bundled model {BUNDLED} was not found (looked in {}); set REEL_MODELS to the folder holding it, or pass --model DIR", looked.join(", "))
            }
        };
    }
    let dir = PathBuf::from(model);
    if !dir.join("model_index.json").is_file() {
        bail!("'{model}' is not a model: no model_index.json there (pass {BUNDLED} or a diffusers-layout folder, as `reel train export` writes)");
    }
    Ok(dir)
}

/// The request of the command line: JSON from --request (or stdin), else the prompt; flags
/// given on the command line win over both.
fn request(args: &GenerateArgs) -> Result<Request> {
    let mut req = match (&args.request, &args.prompt) {
        (Some(_), Some(_)) => bail!("give a prompt or --request, not both"),
        (Some(path), None) => {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading the request from stdin")?;
                s
            } else {
                std::fs::read_to_string(path).with_context(|| format!("cannot read request '{}'", path.display()))?
            };
            Request::from_json(&text)?
        }
        (None, Some(prompt)) => Request::text(prompt),
        (None, None) => bail!("nothing to generate: give a prompt (reel generate \"a red circle moving right\") or --request FILE"),
    };
    set(&mut req.negative_prompt, args.negative_prompt.clone());
    set(&mut req.style, args.style.clone());
    set(&mut req.camera, args.camera.clone());
    set(&mut req.mood, args.mood.clone());
    set(&mut req.theme, args.theme.clone());
    set(&mut req.width, args.width);
    set(&mut req.height, args.height);
    set(&mut req.frames, args.frames);
    set(&mut req.duration, args.duration);
    set(&mut req.fps, args.fps);
    set(&mut req.format, args.format.clone());
    set(&mut req.seed, args.seed);
    set(&mut req.steps, args.steps);
    set(&mut req.guidance, args.guidance);
    set(&mut req.first_frame_steps, args.first_frame_steps);
    set(&mut req.layout_strength, args.layout_strength);
    set(&mut req.layout_first_frame, args.layout_first_frame);
    set(&mut req.layout_guidance, args.layout_guidance);
    set(&mut req.layout_erosion, args.layout_erosion);
    set(&mut req.layout_refine, args.layout_refine);
    set(&mut req.scheduler, args.scheduler.clone());
    set(&mut req.model, args.model.clone());
    Ok(req)
}

fn set<T>(field: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *field = v;
    }
}

/// A file name from the prompt's content: "a red circle moving right" → `a-red-circle-moving-right`.
fn slug(text: &str) -> String {
    let words: Vec<String> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(8).map(str::to_lowercase).collect();
    if words.is_empty() {
        "video".into()
    } else {
        words.join("-")
    }
}

/// `reel generate`: checks the request against the model's configs, loads it, renders the
/// video and writes its sidecar.
pub fn generate(args: GenerateArgs, verbose: bool, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let req = request(&args)?;
    let model_name = req.model.clone().unwrap_or_else(|| BUNDLED.into());
    let dir = model_dir(&model_name)?;
    let read = read_spec(&dir)?;
    let spec = &read.0;
    // The output's extension names a format; a path without one takes the request's format
    // (a folder of PNG frames with `--format png`).
    let output_format = match &args.output {
        Some(path) => match VideoFormat::from_path(path) {
            Ok(format) => Some(format),
            Err(_) if req.format.is_some() && path.extension().is_none() => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    // Every check before any weight is read.
    let mut resolved = resolve(&req, spec, output_format)?;
    let out = args.output.clone().unwrap_or_else(|| PathBuf::from(resolved.format.file_name(&slug(&resolved.content))));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        bail!("the output's folder '{}' does not exist; create it first or choose another -o", parent.display());
    }
    if verbose {
        eprintln!("model: {} ({})", model_name, dir.display());
        eprintln!("prompt: {}", resolved.prompt);
        eprintln!("settings: {}", serde_json::to_string(&settings_json(&resolved))?);
        for note in &resolved.notes {
            eprintln!("note: {note}");
        }
    }

    let t = Instant::now();
    let model = Model::load(&dir, read).with_context(|| format!("loading model '{}'", dir.display()))?;
    let load_s = t.elapsed().as_secs_f64();
    let unknown = model.fit_vocabulary(&mut resolved);
    if verbose {
        eprintln!("model prompt: {}", resolved.prompt);
    }
    if !unknown.is_empty() {
        eprintln!("warning: the model does not know the words {unknown:?}; they are read as unknown");
    }
    let bar = progress_bar(resolved.steps as u64, "denoising", quiet);
    let (path, t, layout) = render(&model, &resolved, &out, &|i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64)
    })?;
    bar.finish_and_clear();
    if verbose {
        if let Some(l) = &layout {
            eprintln!("layout: {}", serde_json::to_string(l)?);
        }
    }
    let timings = json!({
        "load": load_s, "text": t.text, "layout": t.layout, "denoise": t.denoise, "decode": t.decode, "encode": t.encode,
        "total": started.elapsed().as_secs_f64(),
    });
    let sidecar = sidecar_path(&path);
    let record = json!({
        "path": path,
        "model": model_name,
        "model_dir": dir,
        "request": req,
        "settings": settings_json(&resolved),
        "layout": layout,
        "timings": timings,
        "reel_version": env!("CARGO_PKG_VERSION"),
    });
    reel_media::write_atomic(&sidecar, serde_json::to_string_pretty(&record)?.as_bytes())?;
    if args.json {
        println!("{}", serde_json::to_string(&json!({"path": path, "sidecar": sidecar, "seed": resolved.seed, "timings": timings, "settings": settings_json(&resolved)}))?);
    } else {
        println!("{}", path.display());
    }
    Ok(())
}

/// Seconds spent in each stage of one video.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub text: f64,
    /// Planning, painting and encoding the layout (0 without one).
    pub layout: f64,
    pub denoise: f64,
    pub decode: f64,
    pub encode: f64,
}

/// Makes one checked request's video at `out` with a loaded model: text → the planned
/// layout, if the request has one → denoise (with `on_step(i, total)` after each step) →
/// decode streamed into the writer; returns the path, the stages' times and the layout.
/// Nothing is left at `out` on an error or Ctrl-C.
pub fn render(model: &Model, resolved: &Resolved, out: &Path, on_step: &dyn Fn(usize, usize)) -> Result<(PathBuf, Timings, Option<Layout>)> {
    let components = model.components(resolved.scheduler);
    let s = settings(resolved);
    let mut t = Timings::default();
    let clock = Instant::now();
    let context = components.encode_text(&resolved.prompt, &s)?;
    t.text = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let layout = components.plan_layout(&resolved.prompt, &s)?;
    let start = layout.as_ref().map(|l| components.encode_layout(l, &s)).transpose()?;
    t.layout = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let latents = components.denoise_with(&context, start.as_ref(), &s, on_step)?;
    t.denoise = clock.elapsed().as_secs_f64();
    if crate::INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted before writing; nothing was written");
    }
    // Decode as a stream into the writer; the writer's share is timed apart.
    let fps = Rational::approximate(resolved.fps).context("the frame rate has no fraction")?;
    let spec = VideoSpec::new(resolved.width, resolved.height, fps)?;
    let mut writer = VideoWriter::create(out, Some(resolved.format), spec, &EncodeOptions::default())?;
    let clock = Instant::now();
    components.decode(&latents, |frame| {
        let w = Instant::now();
        writer.write(&frame).map_err(candle_core::Error::wrap)?;
        t.encode += w.elapsed().as_secs_f64();
        Ok(())
    })?;
    t.decode = clock.elapsed().as_secs_f64() - t.encode;
    if crate::INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted while decoding; nothing was written");
    }
    let w = Instant::now();
    let path = writer.finish()?;
    t.encode += w.elapsed().as_secs_f64();
    Ok((path, t, layout))
}

fn settings_json(r: &Resolved) -> serde_json::Value {
    serde_json::to_value(r).expect("settings serialise")
}

/// `out.mp4` → `out.json`; a folder of frames `out/` → `out.json` beside it.
pub fn sidecar_path(video: &Path) -> PathBuf {
    let name = video.file_stem().map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned());
    video.with_file_name(format!("{name}.json"))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_prompts_and_sidecars_beside_videos() {
        assert_eq!(slug("A red circle, moving right!"), "a-red-circle-moving-right");
        assert_eq!(slug("  "), "video");
        assert_eq!(sidecar_path(Path::new("out/clip.mp4")), Path::new("out/clip.json"));
        assert_eq!(sidecar_path(Path::new("frames")), Path::new("frames.json"));
    }
}
