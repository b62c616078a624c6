//! Reading any video the system's FFmpeg libraries can (the `ffmpeg` feature).
//!
//! Used for what the built-in readers cannot decode: AV1 in WebM, H.265, VP9,
//! MPEG-4, ProRes, … in whatever container libavformat knows. Frames are
//! converted to RGB24 by libswscale.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg_next as ff;

use crate::color::{i420_to_rgb, Matrix, YuvPlanes};
use crate::error::{MediaError, Result};
use crate::frame::{Frame, Rational};
use crate::reader::VideoInfo;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

fn open_input(path: &Path) -> Result<(ff::format::context::Input, usize)> {
    init();
    let input = ff::format::input(path).map_err(|e| MediaError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("FFmpeg cannot open it: {e}"),
    })?;
    let stream = input.streams().best(ff::media::Type::Video).ok_or_else(|| MediaError::Unsupported {
        path: path.to_path_buf(),
        reason: "FFmpeg finds no video stream in it".into(),
    })?;
    let index = stream.index();
    Ok((input, index))
}

fn to_rational(r: ff::Rational) -> Option<Rational> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| Rational::new(r.numerator() as u32, r.denominator() as u32))
}

fn decoder_for(path: &Path, stream: &ff::format::stream::Stream) -> Result<ff::decoder::Video> {
    let context = ff::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| MediaError::Decoder { codec: "ffmpeg", index: 0, message: e.to_string() })?;
    context.decoder().video().map_err(|e| MediaError::Unsupported {
        path: path.to_path_buf(),
        reason: format!("FFmpeg has no decoder for its video codec: {e}"),
    })
}

/// Container and stream facts from libavformat; counts packets when the header has no frame count.
pub(crate) fn probe(path: &Path) -> Result<VideoInfo> {
    let (mut input, index) = open_input(path)?;
    let container = input.format().name().split(',').next().unwrap_or("unknown").to_string();
    let stream = input.stream(index).expect("index from best()");
    let decoder = decoder_for(path, &stream)?;
    let codec = decoder.codec().map_or_else(|| format!("{:?}", decoder.id()).to_lowercase(), |c| c.name().to_string());
    let (width, height) = (decoder.width(), decoder.height());
    let fps = to_rational(stream.avg_frame_rate()).or_else(|| to_rational(stream.rate())).unwrap_or(Rational::integer(25));
    let time_base = stream.time_base();
    let stream_duration = stream.duration();
    let mut frames = stream.frames().max(0) as u64;
    if frames == 0 {
        frames = input.packets().filter(|(s, _)| s.index() == index).count() as u64;
    }
    let duration_seconds = if stream_duration > 0 {
        stream_duration as f64 * time_base.numerator() as f64 / time_base.denominator().max(1) as f64
    } else {
        fps.duration_of(frames)
    };
    Ok(VideoInfo { path: path.to_path_buf(), container, codec, width, height, fps, frames, duration_seconds })
}

/// Decodes the best video stream frame by frame.
pub(crate) struct FfmpegReader {
    path: PathBuf,
    input: ff::format::context::Input,
    index: usize,
    decoder: ff::decoder::Video,
    scaler: Option<ff::software::scaling::Context>,
    ready: VecDeque<Frame>,
    sent_eof: bool,
    decoded: u64,
}

impl FfmpegReader {
    pub(crate) fn new(path: &Path) -> Result<Self> {
        let (input, index) = open_input(path)?;
        let decoder = decoder_for(path, &input.stream(index).expect("index from best()"))?;
        Ok(Self { path: path.to_path_buf(), input, index, decoder, scaler: None, ready: VecDeque::new(), sent_eof: false, decoded: 0 })
    }

    fn error(&self, e: ff::Error) -> MediaError {
        MediaError::Decoder { codec: "ffmpeg", index: self.decoded, message: format!("{e} (in '{}')", self.path.display()) }
    }

    /// Moves every frame the decoder has ready into `ready`, as RGB.
    fn drain(&mut self) -> Result<()> {
        let mut decoded = ff::frame::Video::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            let (w, h) = (decoded.width(), decoded.height());
            if let Some(frame) = yuv420_frame(&decoded) {
                self.ready.push_back(frame?);
                self.decoded += 1;
                continue;
            }
            if self.scaler.is_none() {
                let scaler = ff::software::scaling::Context::get(decoded.format(), w, h, ff::format::Pixel::RGB24, w, h, ff::software::scaling::Flags::BILINEAR)
                    .map_err(|e| self.error(e))?;
                self.scaler = Some(scaler);
            }
            let mut rgb = ff::frame::Video::empty();
            self.scaler.as_mut().expect("set above").run(&decoded, &mut rgb).map_err(|e| self.error(e))?;
            let stride = rgb.stride(0);
            let data = rgb.data(0);
            let mut pixels = Vec::with_capacity(w as usize * h as usize * 3);
            for row in 0..h as usize {
                pixels.extend_from_slice(&data[row * stride..row * stride + w as usize * 3]);
            }
            self.ready.push_back(Frame::from_rgb(w, h, pixels)?);
            self.decoded += 1;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            if self.sent_eof {
                return Ok(None);
            }
            let next = self.input.packets().find(|(s, _)| s.index() == self.index).map(|(_, p)| p);
            match next {
                Some(packet) => self.decoder.send_packet(&packet).map_err(|e| self.error(e))?,
                None => {
                    self.decoder.send_eof().map_err(|e| self.error(e))?;
                    self.sent_eof = true;
                }
            }
            self.drain()?;
        }
    }
}

/// 8-bit 4:2:0 frames are converted here, honouring the stream's matrix and range
/// (libswscale would assume BT.601 limited range whatever the stream says).
fn yuv420_frame(decoded: &ff::frame::Video) -> Option<Result<Frame>> {
    use ff::format::Pixel;
    let full_range = match decoded.format() {
        Pixel::YUV420P => decoded.color_range() == ff::color::Range::JPEG,
        Pixel::YUVJ420P => true,
        _ => return None,
    };
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let matrix = match decoded.color_space() {
        ff::color::Space::BT709 => Matrix::bt709(full_range),
        ff::color::Space::BT470BG | ff::color::Space::SMPTE170M => Matrix::bt601(full_range),
        // Unspecified: FFmpeg's convention, BT.601 for SD and BT.709 for HD.
        _ if h >= 720 => Matrix::bt709(full_range),
        _ => Matrix::bt601(full_range),
    };
    let planes = YuvPlanes { y: decoded.data(0), u: decoded.data(1), v: decoded.data(2), y_stride: decoded.stride(0), uv_stride: decoded.stride(1) };
    let mut rgb = vec![0u8; w * h * 3];
    i420_to_rgb(&planes, w, h, matrix, &mut rgb);
    Some(Frame::from_rgb(w as u32, h as u32, rgb))
}

impl Iterator for FfmpegReader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
