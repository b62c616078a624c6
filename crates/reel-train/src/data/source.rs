//! Data sources: Shapes World on the fly, folders of captioned videos or images, latent caches.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use reel_data::{ShapesWorld, WorldConfig};
use reel_media::{Frame, Rational, VideoReader};
use reel_schedulers::noise;

use super::augment::{cover_crop, crop_resize, flip_frame, mirror_caption, to_planar, Jitter};
use super::sampling::{choose_fps, clip_times, frame_at};
use super::{Example, ExamplePayload, AUG_STREAM};
use crate::cache::LatentCache;
use crate::config::{Bucket, DataConfig, SourceKind};
use crate::error::{Result, TrainError};

const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "avi", "gif", "webm", "mkv"];
/// The draw that picks a clip's kind of scene (`data.scoring_share`).
const SCENES_STREAM: u64 = 0x5ce7;
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// A file that could not be used, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.path, self.reason)
    }
}

/// A captioned video or image file.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub path: PathBuf,
    pub caption: String,
    pub frames: u64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
}

impl Item {
    fn duration(&self) -> f64 {
        if self.frames <= 1 {
            0.0
        } else {
            (self.frames - 1) as f64 / self.fps
        }
    }
}

/// An opened source.
pub enum Dataset {
    Shapes { config: DataConfig },
    Files { kind: SourceKind, items: Vec<Item>, skipped: Vec<Skipped>, rates: Vec<f64> },
    Cache(LatentCache),
}

impl Dataset {
    /// Opens the source of `config`: scans a folder (probing every file; unreadable ones are
    /// skipped and listed) or checks a cache.
    pub fn open(config: &DataConfig) -> Result<Self> {
        match config.source {
            SourceKind::Shapes => Ok(Self::Shapes { config: config.clone() }),
            SourceKind::Cache => Ok(Self::Cache(LatentCache::open(config.path.as_deref().expect("checked by the config"))?)),
            kind => {
                let dir = config.path.as_deref().expect("checked by the config");
                let (items, skipped) = scan(dir, config.manifest.as_deref(), kind)?;
                if items.is_empty() {
                    let first = skipped.first().map_or(String::new(), |s| format!("; first skipped: {s}"));
                    return Err(TrainError::Data(format!("no usable {} in '{}' ({} skipped{first})", noun(kind), dir.display(), skipped.len())));
                }
                Ok(Self::Files { kind, items, skipped, rates: config.fps.clone() })
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Shapes { .. } => usize::MAX,
            Self::Files { items, .. } => items.len(),
            Self::Cache(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Files skipped while scanning.
    pub fn skipped(&self) -> &[Skipped] {
        match self {
            Self::Files { skipped, .. } => skipped,
            _ => &[],
        }
    }

    pub fn describe(&self, item: u64) -> String {
        match self {
            Self::Shapes { .. } => format!("shapes world clip {item}"),
            Self::Files { items, .. } => items[item as usize].path.display().to_string(),
            Self::Cache(c) => format!("cache entry {item} of '{}'", c.dir().display()),
        }
    }

    /// Items that fit `bucket` (its aspect ratio is the nearest among `all` and the item is
    /// long enough at some allowed frame rate); `None` for Shapes World (every clip fits, or
    /// an empty list when the bucket is longer than a clip).
    pub fn items_for(&self, bucket: &Bucket, all: &[Bucket]) -> Option<Vec<u64>> {
        match self {
            Self::Shapes { config } => {
                let duration = shapes_duration(config);
                let fits = choose_fps(&config.fps, bucket.frames, duration, config.shapes_fps, config.shapes_frames as u64).is_some();
                if fits { None } else { Some(Vec::new()) }
            }
            Self::Cache(c) => Some(if c.fits(bucket) { (0..c.len() as u64).collect() } else { Vec::new() }),
            Self::Files { items, rates, .. } => Some(
                items
                    .iter()
                    .enumerate()
                    .filter(|(_, it)| {
                        let ar = (it.width as f64 / it.height as f64).ln();
                        let dist = |b: &Bucket| (b.aspect().ln() - ar).abs();
                        let best = all.iter().map(dist).fold(f64::INFINITY, f64::min);
                        dist(bucket) <= best + 1e-9 && fps_for(it, bucket, rates).is_some()
                    })
                    .map(|(i, _)| i as u64)
                    .collect(),
            ),
        }
    }

    /// Loads item `item` into `bucket` with the draws of sample `id`. Errors are reasons
    /// (the caller skips the item and reports it).
    pub fn load(&self, item: u64, bucket: &Bucket, id: u64, config: &DataConfig, seed: u64) -> std::result::Result<Example, String> {
        let key = noise::item_key(seed, AUG_STREAM, id);
        let draw = |j: u64| noise::uniform(key, j);
        let start = if config.random_crop { draw(3) } else { 0.5 };
        let (frames, caption, fps) = match self {
            Self::Cache(c) => return c.load(item).map_err(|e| e.to_string()),
            Self::Shapes { config } => load_shapes(config, item, bucket, start)?,
            Self::Files { items, kind, .. } => {
                let it = &items[item as usize];
                let (fx, fy) = if config.random_crop { (draw(1), draw(2)) } else { (0.5, 0.5) };
                load_file(it, *kind, bucket, &config.fps, start, fx, fy)?
            }
        };
        let mut frames = frames;
        let mut caption = caption;
        if draw(0) < config.flip {
            frames.iter_mut().for_each(flip_frame);
            caption = mirror_caption(&caption);
        }
        let a = config.color_jitter as f32;
        let jitter = if a > 0.0 {
            let f = |j| 1.0 + a * (2.0 * draw(j) as f32 - 1.0);
            Jitter { brightness: f(4), contrast: f(5), saturation: f(6) }
        } else {
            Jitter::NONE
        };
        Ok(Example { payload: ExamplePayload::Pixels(to_planar(&frames, jitter)), caption, fps: fps as f32 })
    }
}

fn noun(kind: SourceKind) -> &'static str {
    if kind == SourceKind::Images { "images" } else { "videos" }
}

fn shapes_duration(config: &DataConfig) -> f64 {
    if config.shapes_frames <= 1 {
        0.0
    } else {
        (config.shapes_frames - 1) as f64 / config.shapes_fps
    }
}

/// The frame rate an item is sampled at for `bucket` (data.fps applies to files too).
fn fps_for(item: &Item, bucket: &Bucket, rates: &[f64]) -> Option<f64> {
    choose_fps(rates, bucket.frames, item.duration(), item.fps, item.frames)
}

/// Which kind of scene Shapes World clip `index` is drawn from (`data.scoring_share`).
fn scenes_of(config: &DataConfig, index: u64) -> reel_data::Scenes {
    if config.scoring_share > 0.0 && noise::uniform(noise::key(config.shapes_seed, SCENES_STREAM), index) < config.scoring_share {
        reel_data::Scenes::Scoring
    } else {
        reel_data::Scenes::All
    }
}

fn load_shapes(config: &DataConfig, index: u64, bucket: &Bucket, start: f64) -> std::result::Result<(Vec<Frame>, String, f64), String> {
    let world = ShapesWorld::new(WorldConfig {
        seed: config.shapes_seed,
        width: bucket.width,
        height: bucket.height,
        frames: config.shapes_frames,
        fps: Rational::approximate(config.shapes_fps).unwrap_or(Rational::integer(8)),
        split: config.split,
        scenes: scenes_of(config, index),
    })
    .map_err(|e| e.to_string())?;
    let duration = shapes_duration(config);
    let fps = choose_fps(&config.fps, bucket.frames, duration, config.shapes_fps, config.shapes_frames as u64)
        .ok_or_else(|| format!("a {}-frame bucket is longer than a Shapes World clip", bucket.frames))?;
    let scene = world.scene(index);
    let caption = world.sample_of(index, &scene).caption;
    let frames = clip_times(bucket.frames, fps, duration, start)
        .into_iter()
        .map(|t| reel_data::render_frame(&scene, bucket.width, bucket.height, if duration > 0.0 { (t / duration).min(1.0) } else { 0.0 }))
        .collect();
    Ok((frames, caption, fps))
}

fn load_file(item: &Item, kind: SourceKind, bucket: &Bucket, rates: &[f64], start: f64, fx: f64, fy: f64) -> std::result::Result<(Vec<Frame>, String, f64), String> {
    let fps = fps_for(item, bucket, rates).ok_or_else(|| format!("too short for {} frames", bucket.frames))?;
    let raw: Vec<Frame> = if kind == SourceKind::Images {
        vec![reel_media::read_image(&item.path).map_err(|e| e.to_string())?]
    } else {
        let wanted: Vec<u64> = clip_times(bucket.frames, fps, item.duration(), start).into_iter().map(|t| frame_at(t, item.fps, item.frames)).collect();
        let last = *wanted.iter().max().expect("a bucket has frames");
        let mut reader = VideoReader::open(&item.path).map_err(|e| e.to_string())?;
        let mut decoded = Vec::with_capacity(wanted.len());
        let mut next = 0;
        for i in 0..=last {
            let frame = match reader.next() {
                Some(f) => f.map_err(|e| e.to_string())?,
                None => return Err(format!("ends after {i} frames, {} announced", item.frames)),
            };
            while next < wanted.len() && wanted[next] == i {
                decoded.push(frame.clone());
                next += 1;
            }
        }
        decoded
    };
    let (w, h) = (raw[0].width(), raw[0].height());
    let crop = cover_crop(w, h, bucket.width, bucket.height, fx, fy);
    let frames = raw.iter().map(|f| crop_resize(f, crop, bucket.width, bucket.height)).collect();
    Ok((frames, item.caption.clone(), fps))
}

/// Lists a folder's captioned files: from a manifest, or `.txt` captions beside the files.
fn scan(dir: &Path, manifest: Option<&Path>, kind: SourceKind) -> Result<(Vec<Item>, Vec<Skipped>)> {
    if !dir.is_dir() {
        return Err(TrainError::Data(format!("'{}' is not a folder (data.path)", dir.display())));
    }
    let manifest = manifest.map(Path::to_path_buf).or_else(|| {
        ["manifest.jsonl", "manifest.csv"].iter().map(|m| dir.join(m)).find(|p| p.is_file())
    });
    let mut skipped = Vec::new();
    let listed: Vec<(PathBuf, String)> = match &manifest {
        Some(m) => read_captions(m, &mut skipped)?,
        None => {
            let exts = if kind == SourceKind::Images { IMAGE_EXTENSIONS } else { VIDEO_EXTENSIONS };
            let mut files = Vec::new();
            walk(dir, exts, &mut files).map_err(TrainError::io(dir))?;
            files.sort();
            files
                .into_iter()
                .filter_map(|f| match std::fs::read_to_string(f.with_extension("txt")) {
                    Ok(c) if !c.trim().is_empty() => Some((f, c.trim().to_string())),
                    _ => {
                        skipped.push(Skipped { path: f.display().to_string(), reason: "no caption: write a .txt beside it or a manifest".into() });
                        None
                    }
                })
                .collect()
        }
    };
    let probed: Vec<std::result::Result<Item, Skipped>> = listed
        .into_par_iter()
        .map(|(path, caption)| probe_item(&path, caption, kind).map_err(|reason| Skipped { path: path.display().to_string(), reason }))
        .collect();
    let mut items = Vec::new();
    for p in probed {
        match p {
            Ok(i) => items.push(i),
            Err(s) => {
                tracing::warn!("skipping {s}");
                skipped.push(s)
            }
        }
    }
    Ok((items, skipped))
}

fn probe_item(path: &Path, caption: String, kind: SourceKind) -> std::result::Result<Item, String> {
    if kind == SourceKind::Images {
        let (width, height) = image::image_dimensions(path).map_err(|e| e.to_string())?;
        return Ok(Item { path: path.to_path_buf(), caption, frames: 1, fps: 1.0, width, height });
    }
    let info = reel_media::probe(path).map_err(|e| e.to_string())?;
    if info.frames == 0 || info.width == 0 || info.height == 0 {
        return Err("no frames".into());
    }
    Ok(Item { path: path.to_path_buf(), caption, frames: info.frames, fps: info.fps.as_f64(), width: info.width, height: info.height })
}

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, exts, out)?;
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str())) {
            out.push(path);
        }
    }
    Ok(())
}

/// `(path, caption)` pairs of a JSONL (`file` or `path`, `caption`) or CSV (`path,caption` header)
/// manifest; paths relative to the manifest. Bad lines are skipped and listed.
pub fn read_captions(manifest: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<(PathBuf, String)>> {
    let text = std::fs::read_to_string(manifest).map_err(TrainError::io(manifest))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut bad = |line: usize, reason: String| skipped.push(Skipped { path: format!("{}:{line}", manifest.display()), reason });
    if manifest.extension().is_some_and(|e| e == "csv") {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let header = lines.next().map(|(_, l)| split_csv(l)).unwrap_or_default();
        let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.trim()));
        let (Some(p), Some(c)) = (col(&["path", "file"]), col(&["caption"])) else {
            return Err(TrainError::Data(format!("'{}': the CSV header needs 'path' and 'caption' columns", manifest.display())));
        };
        for (n, line) in lines {
            let fields = split_csv(line);
            match (fields.get(p), fields.get(c)) {
                (Some(path), Some(caption)) if !path.is_empty() && !caption.is_empty() => out.push((base.join(path), caption.clone())),
                _ => bad(n + 1, "needs a path and a caption".into()),
            }
        }
    } else {
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    bad(n + 1, format!("not JSON: {e}"));
                    continue;
                }
            };
            let path = v.get("file").or_else(|| v.get("path")).and_then(|p| p.as_str());
            match (path, v.get("caption").and_then(|c| c.as_str())) {
                (Some(path), Some(caption)) => out.push((base.join(path), caption.to_string())),
                _ => bad(n + 1, "needs \"file\" (or \"path\") and \"caption\" strings".into()),
            }
        }
    }
    Ok(out)
}

/// One CSV line: commas separate fields; double quotes quote (with `""` for a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes() {
        assert_eq!(split_csv(r#"a.mp4,"a red ball, moving ""left""""#), vec!["a.mp4".to_string(), r#"a red ball, moving "left""#.into()]);
        assert_eq!(split_csv("x,y"), vec!["x".to_string(), "y".into()]);
    }

    #[test]
    fn manifests_in_both_formats_and_bad_lines_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("m.jsonl");
        std::fs::write(&jsonl, "{\"file\":\"a.mp4\",\"caption\":\"one\"}\nnot json\n{\"path\":\"b.mp4\",\"caption\":\"two\"}\n{\"file\":\"c.mp4\"}\n").unwrap();
        let mut skipped = Vec::new();
        let got = read_captions(&jsonl, &mut skipped).unwrap();
        assert_eq!(got, vec![(dir.path().join("a.mp4"), "one".to_string()), (dir.path().join("b.mp4"), "two".into())]);
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].path.ends_with("m.jsonl:2"), "{:?}", skipped[0]);
        let csv = dir.path().join("m.csv");
        std::fs::write(&csv, "caption,path\n\"a, b\",x.mp4\n").unwrap();
        let got = read_captions(&csv, &mut skipped).unwrap();
        assert_eq!(got, vec![(dir.path().join("x.mp4"), "a, b".to_string())]);
    }

    #[test]
    fn scoring_share_draws_that_share_of_clips_from_the_scoring_case() {
        let config = |share: f64| -> DataConfig {
            serde_json::from_value(serde_json::json!({
                "source": "shapes", "scoring_share": share,
                "buckets": [{ "width": 32, "height": 32, "frames": 1, "batch_size": 1 }],
            }))
            .unwrap()
        };
        let bucket = Bucket { width: 32, height: 32, frames: 1, batch_size: 1, weight: 1.0 };
        // Words only other kinds of scene put in a caption: a second object, a camera motion,
        // a style, a mood.
        let busy = |c: &str| [" and ", "pans", "zooms", "pixel", "outlined", "line-art", "gloomy", "dark", "cheerful", "bright"].iter().any(|w| c.contains(w));
        let captions = |share: f64| (0..80).map(|i| load_shapes(&config(share), i, &bucket, 0.0).unwrap().1).collect::<Vec<_>>();
        let busy_share = |share: f64| captions(share).iter().filter(|c| busy(c)).count();
        assert_eq!(busy_share(1.0), 0, "every clip is a scoring-case clip");
        let all = busy_share(0.0);
        assert!(all > 50, "most clips of every kind of scene say more ({all} of 80)");
        let half = busy_share(0.5);
        assert!(half > 15 && half < all - 15, "half the clips come from the scoring case ({half} vs {all} of 80)");
        assert_eq!(captions(0.5), captions(0.5), "the draw is fixed by the seed and index");
    }
}
