//! Evaluating a set of captioned clips: prompt adherence and temporal quality per clip, and
//! their summaries, saved as `evaluation.json`.

use std::path::{Path, PathBuf};

use reel_data::SceneLabels;
use rayon::prelude::*;
use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::adherence::{score_clip, summarize, ClipScore, Summary};
use crate::error::{io_err, EvalError, Result};
use crate::temporal::{self, TemporalMetrics, TemporalSummary};

/// File name of a saved evaluation.
pub const EVALUATION: &str = "evaluation.json";

/// One clip's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClipResult {
    /// Video path relative to the evaluation's `root`.
    pub file: String,
    pub caption: String,
    pub labels: SceneLabels,
    pub score: ClipScore,
    pub temporal: TemporalMetrics,
}

/// A whole set's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    /// What was evaluated (the manifest path as given).
    pub source: String,
    /// Directory the clips' `file` paths are relative to (absolute).
    pub root: PathBuf,
    pub adherence: Summary,
    pub temporal: TemporalSummary,
    pub clips: Vec<ClipResult>,
    /// Fréchet distance of these clips' features to a reference set's, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frechet: Option<ReferenceDistance>,
}

/// A Fréchet distance to a reference clip set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceDistance {
    /// The reference set as given.
    pub reference: String,
    #[serde(flatten)]
    pub distance: crate::features::Distance,
}

impl Evaluation {
    /// Loads `evaluation.json` (or a directory holding it).
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() { path.join(EVALUATION) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).map_err(|e| EvalError::NotAnEvaluation { path: file.clone(), message: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| EvalError::NotAnEvaluation { path: file, message: e.to_string() })
    }

    /// Writes `dir/evaluation.json` whole or not at all.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let text = serde_json::to_string_pretty(self).expect("an evaluation serialises");
        Ok(reel_media::write_atomic(&dir.join(EVALUATION), text.as_bytes())?)
    }

    /// The frames of clip `i`.
    pub fn frames(&self, i: usize) -> Result<Vec<Frame>> {
        let path = self.root.join(&self.clips[i].file);
        reel_media::read_video(&path).map(|(_, f)| f).map_err(|source| EvalError::Clip { path, line: i + 1, source })
    }
}

/// One line of a manifest: `reel data synth`'s format, of which only these fields are read.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    /// Video path relative to the manifest.
    pub file: String,
    pub caption: String,
    pub labels: SceneLabels,
}

/// Reads a manifest: one JSON object per line with `file`, `caption` and `labels`.
pub fn read_entries(manifest: &Path) -> Result<Vec<Entry>> {
    let bad = |message: String| EvalError::Manifest { path: manifest.to_path_buf(), message };
    let text = std::fs::read_to_string(manifest).map_err(|e| bad(e.to_string()))?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        entries.push(serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?);
    }
    if entries.is_empty() {
        return Err(bad("it lists no clips".into()));
    }
    Ok(entries)
}

/// The folder a manifest's `file` paths are relative to.
pub(crate) fn manifest_dir(manifest: &Path) -> PathBuf {
    manifest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// Reads `manifest` and scores its clips (see [`evaluate_entries`]).
pub fn evaluate_manifest(manifest: &Path, threads: usize, progress: &(dyn Fn() + Sync)) -> Result<Evaluation> {
    evaluate_entries(manifest, &read_entries(manifest)?, threads, progress)
}

/// Scores the clips `entries` (read from `manifest`) on `threads` threads, calling `progress`
/// after each clip. Every clip is decoded before anything is returned; an unreadable one is
/// the error.
pub fn evaluate_entries(manifest: &Path, entries: &[Entry], threads: usize, progress: &(dyn Fn() + Sync)) -> Result<Evaluation> {
    let root = manifest_dir(manifest);
    let root = std::fs::canonicalize(&root).map_err(io_err(&root))?;
    let clips: Vec<ClipResult> = crate::with_threads(threads, || {
        entries
            .par_iter()
            .enumerate()
            .map(|(i, entry)| {
                let path = root.join(&entry.file);
                let (_, frames) = reel_media::read_video(&path).map_err(|source| EvalError::Clip { path, line: i + 1, source })?;
                let result = ClipResult {
                    file: entry.file.clone(),
                    caption: entry.caption.clone(),
                    labels: entry.labels.clone(),
                    score: score_clip(&frames, &entry.labels),
                    temporal: temporal::measure(&frames),
                };
                progress();
                Ok(result)
            })
            .collect::<Result<_>>()
    })?;
    Ok(Evaluation {
        source: manifest.display().to_string(),
        root,
        adherence: summarize(clips.iter().map(|c| &c.score)),
        temporal: temporal::summarize(clips.iter().map(|c| &c.temporal)),
        clips,
        frechet: None,
    })
}
