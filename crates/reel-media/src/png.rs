//! A folder of PNG frames: `frame_000000.png`, `frame_000001.png`, … and a
//! `video.json` with the size and the frame rate (which PNGs cannot carry).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, Rational, VideoSpec};
use crate::writer::FrameEncoder;

/// Name of the metadata file inside a frame folder.
pub const META_FILE: &str = "video.json";
/// Frame rate assumed for a folder without `video.json`.
pub const DEFAULT_FOLDER_FPS: Rational = Rational::integer(24);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FolderMeta {
    pub width: u32,
    pub height: u32,
    pub fps: Rational,
    pub frames: u64,
}

pub(crate) fn frame_name(index: u64) -> String {
    format!("frame_{index:06}.png")
}

pub(crate) struct PngFolderEncoder {
    dir: PathBuf,
    spec: VideoSpec,
    index: u64,
}

impl PngFolderEncoder {
    pub(crate) fn new(dir: &Path, spec: VideoSpec) -> Result<Self> {
        Ok(Self { dir: dir.to_path_buf(), spec, index: 0 })
    }
}

/// Writes one RGB frame as a PNG file.
pub fn write_png(path: &Path, frame: &Frame) -> Result<()> {
    let file = File::create(path).map_err(io_err(path))?;
    PngEncoder::new_with_quality(BufWriter::new(file), CompressionType::Fast, FilterType::Adaptive)
        .write_image(frame.data(), frame.width(), frame.height(), ExtendedColorType::Rgb8)
        .map_err(|e| MediaError::Encoder { codec: "PNG", message: e.to_string() })
}

/// Reads one PNG (or any image the `image` crate's enabled decoders know) as RGB.
pub fn read_image(path: &Path) -> Result<Frame> {
    let img = image::open(path).map_err(|e| MediaError::Corrupt { path: path.to_path_buf(), container: "PNG", reason: e.to_string() })?;
    let rgb = img.to_rgb8();
    Frame::from_rgb(rgb.width(), rgb.height(), rgb.into_raw())
}

impl FrameEncoder for PngFolderEncoder {
    fn encode(&mut self, frame: &Frame) -> Result<()> {
        write_png(&self.dir.join(frame_name(self.index)), frame)?;
        self.index += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let meta = FolderMeta { width: self.spec.width, height: self.spec.height, fps: self.spec.fps, frames: self.index };
        let path = self.dir.join(META_FILE);
        fs::write(&path, serde_json::to_vec_pretty(&meta).expect("plain struct")).map_err(io_err(&path))
    }
}

/// The PNG files of a folder, in name order, and its metadata if present.
pub(crate) fn list_folder(dir: &Path) -> Result<(Vec<PathBuf>, Option<FolderMeta>)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    let meta_path = dir.join(META_FILE);
    let meta = if meta_path.exists() {
        let text = fs::read(&meta_path).map_err(io_err(&meta_path))?;
        Some(serde_json::from_slice(&text).map_err(|e| MediaError::Corrupt {
            path: meta_path.clone(),
            container: "frame folder",
            reason: format!("{META_FILE}: {e}"),
        })?)
    } else {
        None
    };
    Ok((files, meta))
}
