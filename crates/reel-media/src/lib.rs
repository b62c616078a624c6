//! # reel-media — video files for Reel
//!
//! Streaming writers for MP4/H.264, WebM/AV1, AVI/Motion-JPEG, animated GIF
//! and folders of PNG frames, all pure Rust (plus OpenH264's bundled C), and
//! readers for MP4/H.264, AVI/MJPEG, GIF and PNG folders. The optional
//! `ffmpeg` feature reads anything the system's libav* can.
//!
//! Every writer works on a hidden temporary and renames it into place when
//! the video is complete, so a failed or interrupted write never leaves a
//! partial file under the requested name. Frames leave as they arrive: memory
//! does not grow with the length of the video (see BENCHMARKS.md).
//!
//! ```text
//! reel video info out.mp4 --json
//! ```

mod atomic;
mod avi;
mod color;
mod error;
#[cfg(feature = "ffmpeg")]
mod ffmpeg;
mod frame;
mod gif;
mod h264;
mod mp4;
mod png;
mod reader;
mod sheet;
mod webm;
mod writer;

pub use atomic::write_atomic;
pub use error::{MediaError, Result};
pub use frame::{check_size, psnr_from_mse, video_psnr, Frame, Rational, VideoSpec, MAX_SIDE, MIN_SIDE};
pub use png::{read_image, write_png, DEFAULT_FOLDER_FPS, META_FILE};
pub use reader::{probe, read_video, VideoInfo, VideoReader};
pub use sheet::contact_sheet;
pub use writer::{write_video, EncodeOptions, VideoFormat, VideoWriter};
