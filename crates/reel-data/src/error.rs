//! The one error type of `reel-data`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("invalid {field} {value}: {reason}")]
    InvalidConfig { field: &'static str, value: String, reason: String },

    #[error(transparent)]
    Media(#[from] reel_media::MediaError),

    #[error("cannot create output directory '{}': {source}", path.display())]
    OutputDir { path: PathBuf, source: std::io::Error },

    #[error("I/O error on '{}': {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("interrupted; the clips written by this run were removed")]
    Interrupted,
}

impl DataError {
    /// A suggestion for the user, printed by the CLI as a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Media(e) => e.hint(),
            Self::InvalidConfig { field: "frames", .. } => Some("ask for 1 frame or more, e.g. --frames 17".into()),
            Self::InvalidConfig { field: "count", .. } => Some("ask for 1 clip or more, e.g. --count 8".into()),
            Self::OutputDir { .. } => Some("choose an --out directory you can write to".into()),
            _ => None,
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
