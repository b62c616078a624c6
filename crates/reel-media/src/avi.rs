//! AVI (RIFF) with Motion JPEG video: each frame an independent JPEG.
//!
//! The writer streams `00dc` chunks into the `movi` list and keeps 8 bytes per
//! frame for the `idx1` index; the header's frame counts and sizes are patched
//! in at the end. AVI 1.0 addresses at most 4 GiB; a larger video is refused
//! with an error rather than written broken.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jpeg_encoder::{ColorType, Encoder as JpegEncoder, SamplingFactor};

use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, Rational, VideoSpec};
use crate::writer::{EncodeOptions, FrameEncoder};

const AVIF_HASINDEX: u32 = 0x10;
const AVIIF_KEYFRAME: u32 = 0x10;
const MAX_RIFF: u64 = u32::MAX as u64 - (1 << 20);

fn fourcc(b: &mut Vec<u8>, s: &[u8; 4]) {
    b.extend_from_slice(s);
}
fn le32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn le16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// Byte offsets of the header fields patched when the video is finished.
struct Patches {
    riff_size: u64,
    total_frames: u64,
    avih_buffer: u64,
    strh_length: u64,
    strh_buffer: u64,
    movi_size: u64,
    movi_start: u64,
}

pub(crate) struct MjpegAviEncoder {
    out: BufWriter<File>,
    /// The requested output, named in errors.
    path: PathBuf,
    spec: VideoSpec,
    quality: u8,
    patches: Patches,
    /// (offset from the `movi` fourcc, size) per frame.
    index: Vec<(u32, u32)>,
    written: u64,
    largest: u32,
    jpeg: Vec<u8>,
}

impl MjpegAviEncoder {
    pub(crate) fn new(file: File, path: &Path, spec: VideoSpec, options: &EncodeOptions) -> Result<Self> {
        let (w, h) = (spec.width, spec.height);
        let mut b = Vec::with_capacity(256);
        fourcc(&mut b, b"RIFF");
        le32(&mut b, 0);
        fourcc(&mut b, b"AVI ");
        fourcc(&mut b, b"LIST");
        let hdrl_size_at = b.len();
        le32(&mut b, 0);
        fourcc(&mut b, b"hdrl");
        fourcc(&mut b, b"avih");
        le32(&mut b, 56);
        let avih = b.len();
        le32(&mut b, (1_000_000.0 * spec.fps.den as f64 / spec.fps.num as f64).round() as u32);
        le32(&mut b, 0); // max bytes per second
        le32(&mut b, 0); // padding granularity
        le32(&mut b, AVIF_HASINDEX);
        le32(&mut b, 0); // total frames (patched)
        le32(&mut b, 0); // initial frames
        le32(&mut b, 1); // streams
        le32(&mut b, 0); // suggested buffer size (patched)
        le32(&mut b, w);
        le32(&mut b, h);
        b.extend_from_slice(&[0; 16]);
        fourcc(&mut b, b"LIST");
        let strl_size_at = b.len();
        le32(&mut b, 0);
        fourcc(&mut b, b"strl");
        fourcc(&mut b, b"strh");
        le32(&mut b, 56);
        let strh = b.len();
        fourcc(&mut b, b"vids");
        fourcc(&mut b, b"MJPG");
        le32(&mut b, 0); // flags
        le16(&mut b, 0); // priority
        le16(&mut b, 0); // language
        le32(&mut b, 0); // initial frames
        le32(&mut b, spec.fps.den); // scale
        le32(&mut b, spec.fps.num); // rate
        le32(&mut b, 0); // start
        le32(&mut b, 0); // length (patched)
        le32(&mut b, 0); // suggested buffer size (patched)
        le32(&mut b, u32::MAX); // quality: default
        le32(&mut b, 0); // sample size: variable
        for v in [0u16, 0, w as u16, h as u16] {
            le16(&mut b, v);
        }
        fourcc(&mut b, b"strf");
        le32(&mut b, 40);
        le32(&mut b, 40);
        le32(&mut b, w);
        le32(&mut b, h);
        le16(&mut b, 1);
        le16(&mut b, 24);
        fourcc(&mut b, b"MJPG");
        le32(&mut b, w * h * 3);
        b.extend_from_slice(&[0; 16]);
        let strl_size = (b.len() - strl_size_at - 4) as u32;
        b[strl_size_at..strl_size_at + 4].copy_from_slice(&strl_size.to_le_bytes());
        let hdrl_size = (b.len() - hdrl_size_at - 4) as u32;
        b[hdrl_size_at..hdrl_size_at + 4].copy_from_slice(&hdrl_size.to_le_bytes());
        fourcc(&mut b, b"LIST");
        let movi_size = b.len();
        le32(&mut b, 0);
        let movi_start = b.len();
        fourcc(&mut b, b"movi");

        let patches = Patches {
            riff_size: 4,
            total_frames: avih as u64 + 16,
            avih_buffer: avih as u64 + 28,
            strh_length: strh as u64 + 32,
            strh_buffer: strh as u64 + 36,
            movi_size: movi_size as u64,
            movi_start: movi_start as u64,
        };
        let mut out = BufWriter::new(file);
        out.write_all(&b).map_err(io_err(path))?;
        Ok(Self { out, path: path.to_path_buf(), spec, quality: options.quality.clamp(1, 100), patches, index: Vec::new(), written: b.len() as u64, largest: 0, jpeg: Vec::new() })
    }

    fn patch(file: &mut File, at: u64, value: u32) -> std::io::Result<()> {
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&value.to_le_bytes())
    }
}

impl FrameEncoder for MjpegAviEncoder {
    fn encode(&mut self, frame: &Frame) -> Result<()> {
        self.jpeg.clear();
        let mut encoder = JpegEncoder::new(&mut self.jpeg, self.quality);
        encoder.set_sampling_factor(SamplingFactor::F_1_1); // 4:4:4: saturated edges keep their colour
        encoder
            .encode(frame.data(), self.spec.width as u16, self.spec.height as u16, ColorType::Rgb)
            .map_err(|e| MediaError::Encoder { codec: "MJPEG", message: e.to_string() })?;
        let size = self.jpeg.len() as u32;
        let padded = size as u64 + (size as u64 & 1);
        if self.written + 8 + padded + 16 * (self.index.len() as u64 + 1) > MAX_RIFF {
            return Err(MediaError::TooLarge {
                container: "AVI",
                what: format!("frame {}", self.index.len()),
                limit: "4 GiB".into(),
            });
        }
        let offset = (self.written - self.patches.movi_start) as u32;
        let mut header = Vec::with_capacity(8);
        fourcc(&mut header, b"00dc");
        le32(&mut header, size);
        self.out.write_all(&header).map_err(io_err(&self.path))?;
        self.out.write_all(&self.jpeg).map_err(io_err(&self.path))?;
        if size & 1 == 1 {
            self.out.write_all(&[0]).map_err(io_err(&self.path))?;
        }
        self.written += 8 + padded;
        self.index.push((offset, size));
        self.largest = self.largest.max(size);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let movi_end = self.written;
        let mut idx = Vec::with_capacity(8 + 16 * self.index.len());
        fourcc(&mut idx, b"idx1");
        le32(&mut idx, 16 * self.index.len() as u32);
        for &(offset, size) in &self.index {
            fourcc(&mut idx, b"00dc");
            le32(&mut idx, AVIIF_KEYFRAME);
            le32(&mut idx, offset);
            le32(&mut idx, size);
        }
        self.out.write_all(&idx).map_err(io_err(&self.path))?;
        let total = movi_end + idx.len() as u64;
        let mut file = self.out.into_inner().map_err(|e| MediaError::Io { path: self.path.clone(), source: e.into_error() })?;
        let p = &self.patches;
        let frames = self.index.len() as u32;
        let buffer = self.largest + 8;
        (|| {
            Self::patch(&mut file, p.riff_size, (total - 8) as u32)?;
            Self::patch(&mut file, p.total_frames, frames)?;
            Self::patch(&mut file, p.avih_buffer, buffer)?;
            Self::patch(&mut file, p.strh_length, frames)?;
            Self::patch(&mut file, p.strh_buffer, buffer)?;
            Self::patch(&mut file, p.movi_size, (movi_end - p.movi_start) as u32)?;
            file.sync_all()
        })()
        .map_err(io_err(&self.path))
    }
}

/// What the AVI header says.
#[derive(Debug, Clone)]
pub(crate) struct AviHeader {
    pub handler: String,
    pub width: u32,
    pub height: u32,
    pub fps: Rational,
    pub frames: u64,
    /// Byte range of the `movi` list's contents.
    movi: (u64, u64),
}

fn le32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the `hdrl` list and finds `movi`.
pub(crate) fn read_header(path: &Path, file: &mut File) -> Result<AviHeader> {
    let corrupt = |reason: String| MediaError::Corrupt { path: path.to_path_buf(), container: "AVI", reason };
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::new(&mut *file);
    let mut head = [0u8; 12];
    r.read_exact(&mut head).map_err(|_| corrupt("shorter than a RIFF header".into()))?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"AVI " {
        return Err(corrupt("no 'RIFF....AVI ' signature".into()));
    }
    let (mut header, mut movi) = (None, None);
    let mut at = 12u64;
    while at + 8 <= len {
        r.seek(SeekFrom::Start(at)).map_err(io_err(path))?;
        let mut ck = [0u8; 12];
        r.read_exact(&mut ck[..8]).map_err(io_err(path))?;
        let size = u32::from_le_bytes(ck[4..8].try_into().unwrap()) as u64;
        if &ck[0..4] == b"LIST" {
            r.read_exact(&mut ck[8..12]).map_err(io_err(path))?;
            match &ck[8..12] {
                b"hdrl" => {
                    if size > 1 << 20 {
                        return Err(corrupt(format!("hdrl list of {size} bytes")));
                    }
                    let mut body = vec![0; size.saturating_sub(4) as usize];
                    r.read_exact(&mut body).map_err(|_| corrupt("the header list is truncated".into()))?;
                    header = Some(parse_hdrl(&body).ok_or_else(|| corrupt("malformed avih/strh/strf headers".into()))?);
                }
                b"movi" => {
                    // A writer that was killed leaves size 0; read to the end then.
                    let end = if size == 0 { len } else { (at + 8 + size).min(len) };
                    movi = Some((at + 12, end));
                }
                _ => {}
            }
        }
        if size == 0 && &ck[0..4] != b"LIST" {
            break;
        }
        at += 8 + size + (size & 1);
    }
    let (handler, width, height, fps, frames) = header.ok_or_else(|| corrupt("no 'hdrl' header list".into()))?;
    let movi = movi.ok_or_else(|| corrupt("no 'movi' list".into()))?;
    Ok(AviHeader { handler, width, height, fps, frames, movi })
}

fn parse_hdrl(body: &[u8]) -> Option<(String, u32, u32, Rational, u64)> {
    let mut at = 0;
    let (mut total, mut width, mut height) = (0u32, 0u32, 0u32);
    let mut video: Option<(String, Rational, u32)> = None;
    while at + 8 <= body.len() {
        let id = &body[at..at + 4];
        let size = le32_at(body, at + 4)? as usize;
        let data = body.get(at + 8..at + 8 + size)?;
        match id {
            b"avih" => {
                total = le32_at(data, 16)?;
                width = le32_at(data, 32)?;
                height = le32_at(data, 36)?;
            }
            b"LIST" if data.get(0..4) == Some(b"strl") && video.is_none() => {
                let mut s = 4;
                let mut strh: Option<&[u8]> = None;
                while s + 8 <= data.len() {
                    let sid = &data[s..s + 4];
                    let ssize = le32_at(data, s + 4)? as usize;
                    let sdata = data.get(s + 8..s + 8 + ssize)?;
                    if sid == b"strh" {
                        strh = Some(sdata);
                    }
                    if sid == b"strf" && strh.is_some_and(|h| &h[0..4] == b"vids") {
                        let h = strh?;
                        let (scale, rate) = (le32_at(h, 20)?, le32_at(h, 24)?);
                        let fps = if scale > 0 && rate > 0 { Rational::new(rate, scale) } else { Rational::integer(25) };
                        let compression = String::from_utf8_lossy(sdata.get(16..20)?).trim().to_string();
                        width = le32_at(sdata, 4)?;
                        height = (le32_at(sdata, 8)? as i32).unsigned_abs();
                        video = Some((compression, fps, le32_at(h, 32)?));
                    }
                    s += 8 + ssize + (ssize & 1);
                }
            }
            _ => {}
        }
        at += 8 + size + (size & 1);
    }
    let (handler, fps, length) = video?;
    let frames = if length > 0 { length } else { total };
    Some((handler, width, height, fps, frames as u64))
}

/// Reads MJPEG frames from the `movi` list in file order.
pub(crate) struct MjpegAviReader {
    path: PathBuf,
    reader: BufReader<File>,
    header: AviHeader,
    at: u64,
    index: u64,
    previous: Option<Frame>,
}

impl MjpegAviReader {
    pub(crate) fn new(path: &Path, file: File, header: AviHeader) -> Result<Self> {
        if !matches!(header.handler.to_ascii_uppercase().as_str(), "MJPG" | "JPEG" | "AVRN" | "LJPG" | "DMB1") {
            return Err(MediaError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("its video codec is '{}'; the built-in AVI reader decodes Motion JPEG only", header.handler),
            });
        }
        let at = header.movi.0;
        Ok(Self { path: path.to_path_buf(), reader: BufReader::new(file), header, at, index: 0, previous: None })
    }

    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let corrupt = |reason: String| MediaError::Corrupt { path: self.path.clone(), container: "AVI", reason };
        while self.at + 8 <= self.header.movi.1 {
            self.reader.seek(SeekFrom::Start(self.at)).map_err(io_err(&self.path))?;
            let mut ck = [0u8; 8];
            self.reader.read_exact(&mut ck).map_err(io_err(&self.path))?;
            let size = u32::from_le_bytes(ck[4..8].try_into().unwrap()) as u64;
            if &ck[0..4] == b"LIST" {
                self.at += 12; // descend into 'rec ' lists
                continue;
            }
            self.at += 8 + size + (size & 1);
            if &ck[0..2] == b"00" && (&ck[2..4] == b"dc" || &ck[2..4] == b"db") {
                if size > 64 << 20 {
                    return Err(corrupt(format!("frame chunk of {size} bytes")));
                }
                let mut data = vec![0; size as usize];
                self.reader
                    .read_exact(&mut data)
                    .map_err(|_| corrupt(format!("frame {} is truncated", self.index)))?;
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

impl Iterator for MjpegAviReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = match self.next_chunk() {
            Ok(Some(d)) => d,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let index = self.index;
        self.index += 1;
        if data.is_empty() {
            // An empty chunk repeats the previous frame.
            return self.previous.clone().map(Ok);
        }
        let frame = image::load_from_memory_with_format(&data, image::ImageFormat::Jpeg)
            .map_err(|e| MediaError::Decoder { codec: "MJPEG", index, message: e.to_string() })
            .and_then(|img| {
                let rgb = img.to_rgb8();
                Frame::from_rgb(rgb.width(), rgb.height(), rgb.into_raw())
            });
        if let Ok(f) = &frame {
            self.previous = Some(f.clone());
        }
        Some(frame)
    }
}
