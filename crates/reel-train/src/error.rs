//! Training errors: each names the problem and, through [`TrainError::hint`], the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config '{path}': {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("run directory '{dir}': {reason}")]
    RunDir { dir: PathBuf, reason: String },
    #[error("data: {0}")]
    Data(String),
    #[error("checkpoint '{path}': {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("cache '{path}': {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("loss is not finite at step {step} ({loss}); the last checkpoint is intact")]
    NonFinite { step: u64, loss: f64 },
    #[error("interrupted at step {step}; checkpoint written")]
    Interrupted { step: u64 },
    #[error("interrupted after {done} of {total} items; the encoded shards are kept in '{partial}': run the same command again to continue")]
    CacheInterrupted { done: u64, total: u64, partial: PathBuf },
    #[error("data parallel: {0}")]
    Distributed(String),
    #[error(transparent)]
    Model(#[from] reel_models::ModelError),
    #[error(transparent)]
    Media(#[from] reel_media::MediaError),
    #[error(transparent)]
    Shapes(#[from] reel_data::DataError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl TrainError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Config { .. } => "see docs/training.md for every key; configs/smoke.toml is a complete example".into(),
            Self::RunDir { .. } => "pass --resume to continue the run, or --out to start a new one elsewhere".into(),
            Self::Checkpoint { .. } => "remove the damaged checkpoint folder to resume from the one before it".into(),
            Self::Cache { .. } => "rebuild it with `reel data cache` using the model you train with".into(),
            Self::NonFinite { .. } => "lower the learning rate or set optimizer.grad_clip, then --resume".into(),
            Self::Distributed(_) => "build with `--features mpi` (needs libopenmpi-dev) and launch with `mpirun -n N`".into(),
            Self::Model(e) => return e.hint(),
            Self::Media(e) => return e.hint(),
            Self::Shapes(e) => return e.hint(),
            _ => return None,
        })
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
