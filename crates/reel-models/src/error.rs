//! The one error type of `reel-models`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),

    #[error("cannot read '{}': {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("invalid {what} '{}': {reason}", path.display())]
    InvalidFile { what: &'static str, path: PathBuf, reason: String },

    #[error("'{}' holds no weights (no *.safetensors or *.safetensors.index.json)", path.display())]
    NoWeights { path: PathBuf },

    #[error("'{}' has no {component} (neither {component}/config.json nor config.json)", path.display())]
    MissingComponent { path: PathBuf, component: String },

    #[error("weights in '{}' do not fit the config: {reason}", path.display())]
    Weights { path: PathBuf, reason: String },

    #[error("invalid model config: {0}")]
    Config(String),

    #[error("bad input {name}: expected {expected}, got {got}")]
    Input { name: &'static str, expected: String, got: String },
}

impl ModelError {
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoWeights { .. } => Some("point at a diffusers component folder (config.json + *.safetensors) or a model folder with model_index.json".into()),
            Self::MissingComponent { .. } => Some("point at a model folder that has this component, or at the component folder itself".into()),
            Self::Weights { .. } => Some("the config.json and the safetensors must come from the same model".into()),
            _ => None,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
