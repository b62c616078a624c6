//! The one error type of `reel-media`.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing a video.
///
/// Each variant carries the numbers and paths a user needs to fix the problem;
/// [`MediaError::hint`] adds a suggestion where one helps.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("unknown video format '{given}' (accepted: mp4, webm, avi, gif, png)")]
    UnknownFormat { given: String },

    #[error("cannot tell the video format of '{}' from its extension", path.display())]
    NoExtension { path: PathBuf },

    #[error("invalid frame size {width}x{height}: {reason}")]
    InvalidSize { width: u32, height: u32, reason: &'static str },

    #[error("invalid frame rate '{given}': {reason}")]
    InvalidFrameRate { given: String, reason: &'static str },

    #[error("a video needs at least one frame, got 0")]
    ZeroFrames,

    #[error("frame {index} is {got_width}x{got_height}, but the video is {width}x{height}")]
    FrameSizeMismatch { index: u64, width: u32, height: u32, got_width: u32, got_height: u32 },

    #[error("frame buffer holds {got} bytes, expected {expected} for {width}x{height} RGB")]
    BufferSize { width: u32, height: u32, expected: usize, got: usize },

    #[error("directory '{}' does not exist", path.display())]
    MissingDirectory { path: PathBuf },

    #[error("cannot write to '{}': {source}", path.display())]
    Unwritable { path: PathBuf, source: std::io::Error },

    #[error("input file '{}' does not exist", path.display())]
    MissingInput { path: PathBuf },

    #[error("I/O error on '{}': {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("'{}' is not a valid {container} file: {reason}", path.display())]
    Corrupt { path: PathBuf, container: &'static str, reason: String },

    #[error("'{}' is not a video this build can read: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },

    #[error("{codec} encoder failed: {message}")]
    Encoder { codec: &'static str, message: String },

    #[error("{codec} decoder failed on frame {index}: {message}")]
    Decoder { codec: &'static str, index: u64, message: String },

    #[error("{what} exceeds the {container} limit of {limit}")]
    TooLarge { container: &'static str, what: String, limit: String },
}

impl MediaError {
    /// A suggestion for the user, printed by the CLI as a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownFormat { .. } | Self::NoExtension { .. } => Some(
                "name the output with .mp4, .webm, .avi or .gif, or pass --format png for a folder of PNG frames"
                    .into(),
            ),
            Self::InvalidSize { .. } => {
                Some("width and height must be even numbers from 16 to 1920, e.g. 64x64 or 256x144".into())
            }
            Self::InvalidFrameRate { .. } => {
                Some("give a positive rate as an integer (24), a fraction (24000/1001) or a decimal (29.97)".into())
            }
            Self::ZeroFrames => Some("ask for 1 frame or more".into()),
            Self::MissingDirectory { .. } => Some("create the directory first, or choose another output path".into()),
            Self::Unwritable { .. } => Some("check the directory's permissions, or choose another output path".into()),
            Self::MissingInput { .. } => Some("check the path; `ls` the directory to see what is there".into()),
            Self::Unsupported { .. } => {
                Some("build with `--features ffmpeg` to read any format the system's FFmpeg can".into())
            }
            Self::TooLarge { .. } => Some("write fewer frames, or split the video into parts".into()),
            _ => None,
        }
    }
}

/// Result type of `reel-media`.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MediaError {
    let path = path.into();
    move |source| MediaError::Io { path, source }
}
