//! Writing a Shapes World data set to disk: one video per clip plus `manifest.jsonl`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use reel_media::{EncodeOptions, Rational, VideoFormat, VideoSpec, VideoWriter};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::labels::{SceneLabels, Split};
use crate::world::{ShapesWorld, WorldConfig};

/// Name of the manifest in a synthesized data set.
pub const MANIFEST: &str = "manifest.jsonl";

/// One line of `manifest.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Video path relative to the manifest.
    pub file: String,
    pub caption: String,
    pub labels: SceneLabels,
    pub frames: u32,
    pub fps: Rational,
    pub width: u32,
    pub height: u32,
    pub split: Split,
    pub index: u64,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub world: WorldConfig,
    pub count: u64,
    pub format: VideoFormat,
    pub encode: EncodeOptions,
    /// Worker threads (at least 1).
    pub threads: usize,
}

/// What [`synthesize`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct SynthReport {
    pub out: PathBuf,
    pub manifest: PathBuf,
    pub clips: u64,
    pub format: VideoFormat,
}

/// Renders `count` clips into `out` (created if missing), calling `progress` after each clip.
/// Setting `stop` (e.g. from a Ctrl-C handler) ends the run early with [`DataError::Interrupted`].
///
/// Everything is validated before the first file is created. If a clip fails,
/// the clips this call wrote are removed again (and `out`, if this call made
/// it), and the error is returned; an existing manifest is only replaced once
/// every clip is written.
pub fn synthesize(out: &Path, options: &SynthOptions, progress: &(dyn Fn() + Sync), stop: &AtomicBool) -> Result<SynthReport> {
    let world = ShapesWorld::new(options.world)?;
    if options.count == 0 {
        return Err(DataError::InvalidConfig { field: "count", value: "0".into(), reason: "nothing to write".into() });
    }
    let spec = VideoSpec::new(options.world.width, options.world.height, options.world.fps)?;
    if out.exists() && !out.is_dir() {
        return Err(DataError::OutputDir {
            path: out.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a file is in the way"),
        });
    }
    let created = !out.exists();
    fs::create_dir_all(out).map_err(|source| DataError::OutputDir { path: out.to_path_buf(), source })?;

    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let entries: Mutex<Vec<ManifestEntry>> = Mutex::new(Vec::with_capacity(options.count as usize));
    let first_error: Mutex<Option<DataError>> = Mutex::new(None);
    let work = || loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= options.count || failed.load(Ordering::Relaxed) {
            return;
        }
        match write_clip(&world, index, out, spec, options, stop) {
            Ok(entry) => {
                entries.lock().expect("no panics while held").push(entry);
                progress();
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_error.lock().expect("no panics while held").get_or_insert(e);
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..options.threads.max(1) {
            s.spawn(work);
        }
    });

    let mut entries = entries.into_inner().expect("threads joined");
    if let Some(err) = first_error.into_inner().expect("threads joined") {
        for e in &entries {
            let path = out.join(&e.file);
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
        if created {
            let _ = fs::remove_dir(out);
        }
        return Err(err);
    }
    entries.sort_by_key(|e| e.index);
    let manifest = out.join(MANIFEST);
    write_manifest(&manifest, &entries)?;
    Ok(SynthReport { out: out.to_path_buf(), manifest, clips: entries.len() as u64, format: options.format })
}

fn write_clip(world: &ShapesWorld, index: u64, out: &Path, spec: VideoSpec, options: &SynthOptions, stop: &AtomicBool) -> Result<ManifestEntry> {
    let file = options.format.file_name(&format!("clip_{index:06}"));
    let scene = world.scene(index);
    let sample = world.sample_of(index, &scene);
    let mut writer = VideoWriter::create(&out.join(&file), Some(options.format), spec, &options.encode)?;
    for frame in world.frames(&scene) {
        if stop.load(Ordering::Relaxed) {
            return Err(DataError::Interrupted);
        }
        writer.write(&frame)?;
    }
    writer.finish()?;
    let c = world.config();
    Ok(ManifestEntry {
        file,
        caption: sample.caption,
        labels: sample.labels,
        frames: c.frames,
        fps: c.fps,
        width: c.width,
        height: c.height,
        split: c.split,
        index,
        seed: c.seed,
    })
}

fn write_manifest(path: &Path, entries: &[ManifestEntry]) -> Result<()> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let temp = path.with_file_name(format!(".{MANIFEST}.reel-tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::io::BufWriter::new(fs::File::create(&temp)?);
        for e in entries {
            serde_json::to_writer(&mut f, e)?;
            f.write_all(b"\n")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io)
}

/// Reads a `manifest.jsonl`.
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestEntry>> {
    let text = fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| DataError::InvalidConfig {
                field: "manifest line",
                value: format!("{} of '{}'", i + 1, path.display()),
                reason: e.to_string(),
            })
        })
        .collect()
}
