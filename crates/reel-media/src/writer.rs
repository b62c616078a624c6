//! [`VideoWriter`]: one streaming writer for every output format.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::atomic::PendingOutput;
use crate::error::{MediaError, Result};
use crate::frame::{Frame, VideoSpec};

/// The formats Reel writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoFormat {
    /// MP4 container, H.264 video (OpenH264), index first.
    Mp4,
    /// WebM container, AV1 video (rav1e).
    Webm,
    /// AVI container, Motion JPEG video.
    Avi,
    /// Animated GIF, a palette per frame.
    Gif,
    /// A folder of PNG frames plus `video.json` with the frame rate.
    Png,
}

impl VideoFormat {
    pub const ALL: [VideoFormat; 5] = [Self::Mp4, Self::Webm, Self::Avi, Self::Gif, Self::Png];

    /// The format named by a path's extension (`.mp4`, `.m4v`, `.webm`, `.avi`, `.gif`);
    /// an existing directory or a path ending in `/` means a folder of PNG frames.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
            return Ok(Self::Png);
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) => ext.parse(),
            None => Err(MediaError::NoExtension { path: path.to_path_buf() }),
        }
    }

    /// The usual file extension (empty for a folder of frames).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Webm => "webm",
            Self::Avi => "avi",
            Self::Gif => "gif",
            Self::Png => "",
        }
    }

    /// The codec inside the container.
    pub fn codec(self) -> &'static str {
        match self {
            Self::Mp4 => "h264",
            Self::Webm => "av1",
            Self::Avi => "mjpeg",
            Self::Gif => "gif",
            Self::Png => "png",
        }
    }

    /// `name.ext` for this format (`name` itself for a folder of frames).
    pub fn file_name(self, stem: &str) -> String {
        match self {
            Self::Png => stem.to_string(),
            _ => format!("{stem}.{}", self.extension()),
        }
    }
}

impl fmt::Display for VideoFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mp4 => "mp4",
            Self::Webm => "webm",
            Self::Avi => "avi",
            Self::Gif => "gif",
            Self::Png => "png",
        })
    }
}

impl FromStr for VideoFormat {
    type Err = MediaError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mp4" | "m4v" | "h264" => Ok(Self::Mp4),
            "webm" | "av1" => Ok(Self::Webm),
            "avi" | "mjpeg" => Ok(Self::Avi),
            "gif" => Ok(Self::Gif),
            "png" | "frames" => Ok(Self::Png),
            _ => Err(MediaError::UnknownFormat { given: s.to_string() }),
        }
    }
}

/// Encoder settings shared by every format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodeOptions {
    /// 1 (smallest file) ..= 100 (best picture). The default keeps PSNR ≥ 35 dB on MP4, WebM and AVI.
    pub quality: u8,
    /// Frames between keyframes (MP4, WebM); 0 picks about two seconds.
    pub keyframe_interval: u32,
    /// AV1 encoder speed preset, 0 (slowest, best) ..= 10 (fastest).
    pub av1_speed: u8,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { quality: 85, keyframe_interval: 0, av1_speed: 10 }
    }
}

/// What a format-specific encoder does with frames.
pub(crate) trait FrameEncoder {
    fn encode(&mut self, frame: &Frame) -> Result<()>;
    /// Completes the container in the temporary output.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Writes a video frame by frame; frames leave as they arrive.
///
/// The file appears under its name only after [`VideoWriter::finish`]; a
/// writer dropped before that (an error, a panic) deletes what it wrote.
///
/// ```no_run
/// use reel_media::{Frame, Rational, VideoSpec, VideoWriter};
/// let spec = VideoSpec::new(64, 64, Rational::integer(8))?;
/// let mut writer = VideoWriter::create("out.mp4".as_ref(), None, spec, &Default::default())?;
/// for _ in 0..17 {
///     writer.write(&Frame::filled(64, 64, [230, 40, 40]))?;
/// }
/// writer.finish()?;
/// # Ok::<(), reel_media::MediaError>(())
/// ```
pub struct VideoWriter {
    encoder: Box<dyn FrameEncoder>,
    pending: PendingOutput,
    spec: VideoSpec,
    format: VideoFormat,
    frames: u64,
}

impl VideoWriter {
    /// Starts a video at `path`. `format` overrides the one the extension names.
    pub fn create(path: &Path, format: Option<VideoFormat>, spec: VideoSpec, options: &EncodeOptions) -> Result<Self> {
        let format = match format {
            Some(f) => f,
            None => VideoFormat::from_path(path)?,
        };
        crate::frame::check_size(spec.width, spec.height)?;
        let mut options = options.clone();
        options.quality = options.quality.clamp(1, 100);
        if options.keyframe_interval == 0 {
            options.keyframe_interval = (spec.fps.as_f64() * 2.0).round().max(1.0) as u32;
        }
        let (pending, encoder): (PendingOutput, Box<dyn FrameEncoder>) = if format == VideoFormat::Png {
            let pending = PendingOutput::dir(path)?;
            let encoder = crate::png::PngFolderEncoder::new(pending.temp_path(), spec)?;
            (pending, Box::new(encoder))
        } else {
            let (pending, file) = PendingOutput::file(path)?;
            let encoder = Self::file_encoder(format, file, pending.temp_path(), path, spec, &options)?;
            (pending, encoder)
        };
        tracing::debug!(path = %path.display(), %format, ?spec, "writing video");
        Ok(Self { encoder, pending, spec, format, frames: 0 })
    }

    /// `temp` is where the bytes go; `target` is the path errors name (the one the user asked for).
    fn file_encoder(
        format: VideoFormat,
        file: File,
        temp: &Path,
        target: &Path,
        spec: VideoSpec,
        options: &EncodeOptions,
    ) -> Result<Box<dyn FrameEncoder>> {
        Ok(match format {
            VideoFormat::Mp4 => Box::new(crate::h264::H264Encoder::new(file, temp, target, spec, options)?),
            VideoFormat::Webm => Box::new(crate::webm::Av1WebmEncoder::new(file, target, spec, options)?),
            VideoFormat::Avi => Box::new(crate::avi::MjpegAviEncoder::new(file, target, spec, options)?),
            VideoFormat::Gif => Box::new(crate::gif::GifEncoder::new(file, target, spec)?),
            VideoFormat::Png => unreachable!("folders are handled by the caller"),
        })
    }

    /// Appends one frame; it must have the video's size.
    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if (frame.width(), frame.height()) != (self.spec.width, self.spec.height) {
            return Err(MediaError::FrameSizeMismatch {
                index: self.frames,
                width: self.spec.width,
                height: self.spec.height,
                got_width: frame.width(),
                got_height: frame.height(),
            });
        }
        self.encoder.encode(frame)?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn format(&self) -> VideoFormat {
        self.format
    }

    /// The path the video will have once finished.
    pub fn path(&self) -> &Path {
        self.pending.target()
    }

    /// Completes the container and moves the video into place. A video with no frames is an error
    /// and leaves nothing behind.
    pub fn finish(self) -> Result<PathBuf> {
        if self.frames == 0 {
            return Err(MediaError::ZeroFrames);
        }
        self.encoder.finish()?;
        self.pending.commit()
    }
}

/// Writes a whole clip in one call.
pub fn write_video(path: &Path, format: Option<VideoFormat>, fps: crate::Rational, frames: &[Frame], options: &EncodeOptions) -> Result<PathBuf> {
    let first = frames.first().ok_or(MediaError::ZeroFrames)?;
    let spec = VideoSpec::new(first.width(), first.height(), fps)?;
    let mut writer = VideoWriter::create(path, format, spec, options)?;
    for frame in frames {
        writer.write(frame)?;
    }
    writer.finish()
}
