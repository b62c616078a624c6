//! The one error type of `reel-eval`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read manifest '{}': {message}", path.display())]
    Manifest { path: PathBuf, message: String },

    #[error("cannot read clip '{}' (manifest line {line}): {source}", path.display())]
    Clip { path: PathBuf, line: usize, source: reel_media::MediaError },

    #[error("cannot read clip '{}': {source}", path.display())]
    Video { path: PathBuf, source: reel_media::MediaError },

    #[error("'{}' holds no evaluation: {message}", path.display())]
    NotAnEvaluation { path: PathBuf, message: String },

    #[error("the two evaluations were not made from the same prompts: clip {index} is '{a}' in one and '{b}' in the other")]
    Mismatch { index: usize, a: String, b: String },

    #[error("feature network '{}': {reason}", path.display())]
    Features { path: PathBuf, reason: String },

    #[error("cannot compute a Fréchet distance: {0}")]
    Frechet(String),

    #[error(transparent)]
    Media(#[from] reel_media::MediaError),

    #[error("I/O error on '{}': {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl EvalError {
    /// A suggestion for the user, printed by the CLI as a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Manifest { .. } => Some("pass a manifest.jsonl as `reel data synth` writes it: one JSON object per line with file, caption and labels".into()),
            Self::Clip { .. } => Some("re-create or remove that clip, then run again; nothing was written".into()),
            Self::Video { .. } => Some("re-create or remove that clip, then run again; nothing was written".into()),
            Self::NotAnEvaluation { .. } => Some("pass a manifest.jsonl, an evaluation.json, or a directory holding one (`reel eval adherence --manifest M --out DIR` writes DIR/evaluation.json)".into()),
            Self::Mismatch { .. } => Some("compare evaluations of the same prompt list and seeds, e.g. two models run on one manifest".into()),
            Self::Features { .. } => Some("use the bundled network (the default), a folder written by `reel eval features train`, or I3D weights converted to safetensors with the PyTorch port's names (docs/eval.md)".into()),
            Self::Frechet(_) => Some("each side needs at least two clips; a stable estimate needs many more clips than the feature width (hundreds)".into()),
            Self::Media(e) => e.hint(),
            Self::Io { .. } => Some("check that the path exists and that you can write there".into()),
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io { path: path.to_path_buf(), source }
}
