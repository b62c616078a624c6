//! Reading videos back: [`probe`] for facts, [`VideoReader`] for frames.
//!
//! The container is recognised from the file's first bytes, not its name.
//! Built in: MP4/H.264, AVI/MJPEG, GIF and folders of PNG frames; WebM's
//! container is parsed (for `probe`) but AV1 needs the `ffmpeg` feature to
//! decode. With the `ffmpeg` feature, anything else the system's libav* reads.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, Rational};
use crate::png::DEFAULT_FOLDER_FPS;

/// Facts about a video file, as `reel video info` prints them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub path: PathBuf,
    /// `mp4`, `webm`, `matroska`, `avi`, `gif`, `png-folder`, or what FFmpeg calls it.
    pub container: String,
    /// `h264`, `av1`, `mjpeg`, `gif`, `png`, …
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: Rational,
    pub frames: u64,
    pub duration_seconds: f64,
}

/// The kinds of input recognised from their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sniffed {
    Mp4,
    Matroska,
    Avi,
    Gif,
    PngFolder,
    Other,
}

fn sniff(path: &Path) -> Result<Sniffed> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MediaError::MissingInput { path: path.to_path_buf() },
        _ => MediaError::Io { path: path.to_path_buf(), source: e },
    })?;
    if meta.is_dir() {
        return Ok(Sniffed::PngFolder);
    }
    let mut head = [0u8; 12];
    let mut file = File::open(path).map_err(io_err(path))?;
    let n = file.read(&mut head).map_err(io_err(path))?;
    let head = &head[..n];
    Ok(if head.len() >= 8 && matches!(&head[4..8], b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide") {
        Sniffed::Mp4
    } else if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Sniffed::Matroska
    } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"AVI " {
        Sniffed::Avi
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Sniffed::Gif
    } else {
        Sniffed::Other
    })
}

fn unrecognised(path: &Path) -> MediaError {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return MediaError::Corrupt { path: path.to_path_buf(), container: "video", reason: "the file is empty".into() };
    }
    MediaError::Unsupported {
        path: path.to_path_buf(),
        reason: "its first bytes match none of MP4, WebM/Matroska, AVI or GIF".into(),
    }
}

/// Reads a video's container, codec, size, frame rate, frame count and duration.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let kind = sniff(path)?;
    let info = |container: &str, codec: String, width, height, fps: Rational, frames, duration_seconds| VideoInfo {
        path: path.to_path_buf(),
        container: container.into(),
        codec,
        width,
        height,
        fps,
        frames,
        duration_seconds,
    };
    match kind {
        Sniffed::Mp4 => {
            let mut file = File::open(path).map_err(io_err(path))?;
            let track = crate::mp4::read_track(path, &mut file)?;
            let codec = match track.codec.as_str() {
                "avc1" | "avc3" => "h264".to_string(),
                "hvc1" | "hev1" => "hevc".to_string(),
                "av01" => "av1".to_string(),
                "vp09" => "vp9".to_string(),
                "mp4v" => "mpeg4".to_string(),
                other => other.to_string(),
            };
            let fps = track.fps().unwrap_or(Rational::integer(25));
            let frames = track.samples.len() as u64;
            Ok(info("mp4", codec, track.width, track.height, fps, frames, track.duration_seconds()))
        }
        Sniffed::Matroska => {
            let file = File::open(path).map_err(io_err(path))?;
            let w = crate::webm::probe(path, file)?;
            let codec = match w.codec_id.as_str() {
                "V_AV1" => "av1".into(),
                "V_VP9" => "vp9".into(),
                "V_VP8" => "vp8".into(),
                "V_MPEG4/ISO/AVC" => "h264".into(),
                "V_MPEGH/ISO/HEVC" => "hevc".into(),
                "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/AP" => "mpeg4".into(),
                "V_MJPEG" => "mjpeg".into(),
                other => other.to_ascii_lowercase(),
            };
            let container = if w.doc_type == "webm" { "webm" } else { "matroska" };
            let fps = w.fps.unwrap_or(Rational::integer(25));
            Ok(info(container, codec, w.width, w.height, fps, w.frames, w.duration_s))
        }
        Sniffed::Avi => {
            let mut file = File::open(path).map_err(io_err(path))?;
            let h = crate::avi::read_header(path, &mut file)?;
            let codec = if h.handler.eq_ignore_ascii_case("MJPG") { "mjpeg".into() } else { h.handler.to_ascii_lowercase() };
            Ok(info("avi", codec, h.width, h.height, h.fps, h.frames, h.fps.duration_of(h.frames)))
        }
        Sniffed::Gif => {
            let file = File::open(path).map_err(io_err(path))?;
            let mut reader = crate::gif::GifReader::new(path, file)?;
            let (width, height) = reader.size();
            let mut frames = 0u64;
            for frame in reader.by_ref() {
                frame?;
                frames += 1;
            }
            let duration = reader.delay_cs as f64 / 100.0;
            let fps = if duration > 0.0 { Rational::approximate(frames as f64 / duration) } else { None };
            Ok(info("gif", "gif".into(), width, height, fps.unwrap_or(Rational::integer(10)), frames, duration))
        }
        Sniffed::PngFolder => {
            let (files, meta) = crate::png::list_folder(path)?;
            let first = files.first().ok_or_else(|| MediaError::Corrupt {
                path: path.to_path_buf(),
                container: "frame folder",
                reason: "it holds no .png files".into(),
            })?;
            let (width, height) = match &meta {
                Some(m) => (m.width, m.height),
                None => {
                    let f = crate::png::read_image(first)?;
                    (f.width(), f.height())
                }
            };
            let fps = meta.as_ref().map_or(DEFAULT_FOLDER_FPS, |m| m.fps);
            let frames = files.len() as u64;
            Ok(info("png-folder", "png".into(), width, height, fps, frames, fps.duration_of(frames)))
        }
        Sniffed::Other => {
            #[cfg(feature = "ffmpeg")]
            {
                crate::ffmpeg::probe(path)
            }
            #[cfg(not(feature = "ffmpeg"))]
            {
                Err(unrecognised(path))
            }
        }
    }
}

/// Frames of a video, decoded one at a time.
pub struct VideoReader {
    info: VideoInfo,
    frames: Box<dyn Iterator<Item = Result<Frame>>>,
}

impl VideoReader {
    /// Opens a video for decoding.
    pub fn open(path: &Path) -> Result<Self> {
        let kind = sniff(path)?;
        let info = probe(path)?;
        let frames: Box<dyn Iterator<Item = Result<Frame>>> = match kind {
            Sniffed::Mp4 => {
                let mut file = File::open(path).map_err(io_err(path))?;
                let track = crate::mp4::read_track(path, &mut file)?;
                match crate::h264::H264Reader::new(path, file, track) {
                    Ok(r) => Box::new(r),
                    Err(e) => Self::fallback(path, e)?,
                }
            }
            Sniffed::Avi => {
                let mut file = File::open(path).map_err(io_err(path))?;
                let header = crate::avi::read_header(path, &mut file)?;
                match crate::avi::MjpegAviReader::new(path, file, header) {
                    Ok(r) => Box::new(r),
                    Err(e) => Self::fallback(path, e)?,
                }
            }
            Sniffed::Gif => Box::new(crate::gif::GifReader::new(path, File::open(path).map_err(io_err(path))?)?),
            Sniffed::PngFolder => {
                let (files, _) = crate::png::list_folder(path)?;
                Box::new(files.into_iter().map(|f| crate::png::read_image(&f)))
            }
            Sniffed::Matroska => Self::fallback(
                path,
                MediaError::Unsupported {
                    path: path.to_path_buf(),
                    reason: format!("its {} video needs a decoder that is not built in", info.codec),
                },
            )?,
            Sniffed::Other => Self::fallback(path, unrecognised(path))?,
        };
        Ok(Self { info, frames })
    }

    #[allow(unused_variables)]
    fn fallback(path: &Path, err: MediaError) -> Result<Box<dyn Iterator<Item = Result<Frame>>>> {
        #[cfg(feature = "ffmpeg")]
        {
            Ok(Box::new(crate::ffmpeg::FfmpegReader::new(path)?))
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            Err(err)
        }
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Decodes every frame (a short clip; long videos should be iterated).
    pub fn read_all(self) -> Result<Vec<Frame>> {
        self.frames.collect()
    }
}

impl Iterator for VideoReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.frames.next()
    }
}

/// Reads a whole (short) video into memory.
pub fn read_video(path: &Path) -> Result<(VideoInfo, Vec<Frame>)> {
    let reader = VideoReader::open(path)?;
    let info = reader.info().clone();
    Ok((info, reader.read_all()?))
}
