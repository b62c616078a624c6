//! Animated GIF: a NeuQuant palette per frame, looping forever.
//!
//! GIF delays are whole centiseconds; frame `i` starts at
//! `round(i · 100 / fps)` cs so rounding never drifts (8 fps alternates 12 and
//! 13 cs). Rates above 50 fps cannot be shown faithfully (browsers slow
//! delays under 2 cs down to 10 cs).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, Rational, VideoSpec};
use crate::writer::FrameEncoder;

/// NeuQuant speed: 1 (best palette) ..= 30 (fastest).
const QUANT_SPEED: i32 = 10;

pub(crate) struct GifEncoder {
    encoder: gif::Encoder<BufWriter<File>>,
    /// The requested output, named in errors.
    path: PathBuf,
    spec: VideoSpec,
    index: u64,
}

fn start_cs(fps: Rational, index: u64) -> u64 {
    (index as f64 * 100.0 * fps.den as f64 / fps.num as f64).round() as u64
}

impl GifEncoder {
    pub(crate) fn new(file: File, path: &Path, spec: VideoSpec) -> Result<Self> {
        let gif_err = |e: gif::EncodingError| MediaError::Encoder { codec: "GIF", message: e.to_string() };
        let mut encoder = gif::Encoder::new(BufWriter::new(file), spec.width as u16, spec.height as u16, &[]).map_err(gif_err)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        Ok(Self { encoder, path: path.to_path_buf(), spec, index: 0 })
    }
}

impl FrameEncoder for GifEncoder {
    fn encode(&mut self, frame: &Frame) -> Result<()> {
        let mut gif_frame = gif::Frame::from_rgb_speed(self.spec.width as u16, self.spec.height as u16, frame.data(), QUANT_SPEED);
        let delay = start_cs(self.spec.fps, self.index + 1) - start_cs(self.spec.fps, self.index);
        gif_frame.delay = delay.clamp(1, u16::MAX as u64) as u16;
        self.encoder
            .write_frame(&gif_frame)
            .map_err(|e| MediaError::Encoder { codec: "GIF", message: e.to_string() })?;
        self.index += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let writer = self.encoder.into_inner().map_err(|e| MediaError::Encoder { codec: "GIF", message: e.to_string() })?;
        let file = writer.into_inner().map_err(|e| MediaError::Io { path: self.path.clone(), source: e.into_error() })?;
        file.sync_all().map_err(io_err(&self.path))
    }
}

/// Decodes a GIF into full frames, applying each frame's disposal method.
pub(crate) struct GifReader {
    path: PathBuf,
    decoder: gif::Decoder<std::io::BufReader<File>>,
    canvas: Vec<u8>,
    width: usize,
    height: usize,
    index: u64,
    /// Total delay seen so far, in centiseconds.
    pub(crate) delay_cs: u64,
}

impl GifReader {
    pub(crate) fn new(path: &Path, file: File) -> Result<Self> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let decoder = options
            .read_info(std::io::BufReader::new(file))
            .map_err(|e| MediaError::Corrupt { path: path.to_path_buf(), container: "GIF", reason: e.to_string() })?;
        let (width, height) = (decoder.width() as usize, decoder.height() as usize);
        Ok(Self { path: path.to_path_buf(), decoder, canvas: vec![0; width * height * 4], width, height, index: 0, delay_cs: 0 })
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }
}

impl Iterator for GifReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.index;
        let frame = match self.decoder.read_next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => return Some(Err(MediaError::Corrupt { path: self.path.clone(), container: "GIF", reason: format!("frame {index}: {e}") })),
        };
        self.index += 1;
        self.delay_cs += frame.delay as u64;
        let (left, top) = (frame.left as usize, frame.top as usize);
        let (fw, fh) = (frame.width as usize, frame.height as usize);
        let before = (frame.dispose == gif::DisposalMethod::Previous).then(|| self.canvas.clone());
        for y in 0..fh {
            let cy = top + y;
            if cy >= self.height {
                break;
            }
            for x in 0..fw {
                let cx = left + x;
                if cx >= self.width {
                    break;
                }
                let src = &frame.buffer[(y * fw + x) * 4..(y * fw + x) * 4 + 4];
                if src[3] != 0 {
                    self.canvas[(cy * self.width + cx) * 4..(cy * self.width + cx) * 4 + 4].copy_from_slice(src);
                }
            }
        }
        let rgb: Vec<u8> = self.canvas.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        match frame.dispose {
            gif::DisposalMethod::Background => {
                for y in top..(top + fh).min(self.height) {
                    for x in left..(left + fw).min(self.width) {
                        self.canvas[(y * self.width + x) * 4..(y * self.width + x) * 4 + 4].fill(0);
                    }
                }
            }
            gif::DisposalMethod::Previous => self.canvas = before.expect("saved above"),
            _ => {}
        }
        Some(Frame::from_rgb(self.width as u32, self.height as u32, rgb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_do_not_drift() {
        let fps = Rational::integer(8);
        let delays: Vec<u64> = (0..8).map(|i| start_cs(fps, i + 1) - start_cs(fps, i)).collect();
        assert_eq!(delays.iter().sum::<u64>(), 100);
        assert!(delays.iter().all(|&d| d == 12 || d == 13), "{delays:?}");
    }
}
