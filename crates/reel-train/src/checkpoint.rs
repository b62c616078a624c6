//! Checkpoints: `RUN/checkpoints/step-NNNNNNNN/` with one safetensors file per tensor group
//! (model weights, EMA weights, optimizer moments) and `state.json` (step, stage, data
//! position, optimizer step counts, random-stream counters). Written to a hidden folder and
//! renamed when complete, so a checkpoint on disk is always whole; the last K are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::Skipped;
use crate::error::{Result, TrainError};

pub const DIR: &str = "checkpoints";
const PREFIX: &str = "step-";

/// Everything besides tensors that a resumed run needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Samples trained on (all ranks).
    pub samples: u64,
    /// Per-parameter AdamW step counts.
    pub optimizer_steps: HashMap<String, u64>,
    pub ema_updates: u64,
    /// The random streams are counter based (`reel_schedulers::noise`): every draw is a pure
    /// function of the run seed and a sample id, so the next sample id *is* the RNG state.
    pub seed: u64,
    pub next_sample_id: u64,
    /// Data position: the stage of the next step and the micro-batches of it consumed. Written
    /// for people reading the checkpoint; the trainer derives both from `step` (each step
    /// consumes `grad_accum` micro-batches), so they cannot disagree with it.
    pub stage: usize,
    pub stage_micro_batch: u64,
    /// Files skipped so far.
    pub skipped: Vec<Skipped>,
    /// Seconds of training so far.
    pub elapsed_seconds: f64,
}

pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    run.join(DIR).join(format!("{PREFIX}{step:08}"))
}

/// Checkpoints of a run, oldest first.
pub fn list(run: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run.join(DIR)) else { return Vec::new() };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let step = path.file_name()?.to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
            path.join("state.json").is_file().then_some((step, path))
        })
        .collect();
    found.sort();
    found
}

pub fn latest(run: &Path) -> Option<(u64, PathBuf)> {
    list(run).pop()
}

/// Writes a checkpoint for `state.step` and keeps the newest `keep`.
pub fn save(run: &Path, state: &TrainState, groups: &[(&str, HashMap<String, Tensor>)], keep: usize) -> Result<PathBuf> {
    let dir = step_dir(run, state.step);
    let tmp = run.join(DIR).join(format!(".{PREFIX}{:08}.tmp", state.step));
    let fail = |reason: String| TrainError::Checkpoint { path: dir.clone(), reason };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
    let write = || -> Result<()> {
        for (name, tensors) in groups {
            candle_core::safetensors::save(tensors, tmp.join(format!("{name}.safetensors")))?;
        }
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state).expect("state serialises")).map_err(TrainError::io(&tmp))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(TrainError::io(&dir))?;
        }
        std::fs::rename(&tmp, &dir).map_err(TrainError::io(&dir))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(e.to_string()));
    }
    let all = list(run);
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dir)
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
    groups: HashMap<String, HashMap<String, Tensor>>,
}

impl Checkpoint {
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::Checkpoint { path: dir.to_path_buf(), reason };
        let text = std::fs::read_to_string(dir.join("state.json")).map_err(|e| bad(format!("state.json: {e}")))?;
        let state: TrainState = serde_json::from_str(&text).map_err(|e| bad(format!("state.json: {e}")))?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))? {
            let path = entry.map_err(|e| bad(e.to_string()))?.path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                let name = path.file_stem().expect("has a name").to_string_lossy().to_string();
                groups.insert(name, candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| bad(format!("{}: {e}", path.display())))?);
            }
        }
        Ok(Self { dir: dir.to_path_buf(), state, groups })
    }

    /// A tensor group (empty if the checkpoint has none of that name).
    pub fn group(&self, name: &str) -> HashMap<String, Tensor> {
        self.groups.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_the_newest_and_load_round_trips() {
        let run = tempfile::tempdir().unwrap();
        let t = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
        for step in [10, 20, 30] {
            let state = TrainState { step, next_sample_id: step * 4, ..Default::default() };
            save(run.path(), &state, &[("model", HashMap::from([("w".to_string(), t.clone())]))], 2).unwrap();
        }
        let steps: Vec<u64> = list(run.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![20, 30]);
        let ck = Checkpoint::load(&latest(run.path()).unwrap().1).unwrap();
        assert_eq!(ck.state.next_sample_id, 120);
        assert_eq!(ck.group("model")["w"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(ck.group("ema").is_empty());
        // Hidden temporaries are not checkpoints.
        std::fs::create_dir_all(run.path().join(DIR).join(".step-00000040.tmp")).unwrap();
        assert_eq!(latest(run.path()).unwrap().0, 30);
    }
}
