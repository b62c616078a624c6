//! H.264 through OpenH264 (Cisco's codec, built from bundled C source).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, QpRange, RateControlMode, UsageType,
    VuiConfig,
};
use openh264::formats::{YUVBuffer, YUVSource};
use openh264::OpenH264API;

use crate::color::{i420_to_rgb, rgb_to_i420, Matrix, YuvPlanes};
use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, VideoSpec};
use crate::mp4::{Mp4Muxer, Mp4Track};
use crate::writer::{EncodeOptions, FrameEncoder};

/// Largest quantiser allowed at a quality setting (1..=100): 100 → 10, 85 → 16, 1 → 51;
/// the encoder works in `[max - 4, max]`.
fn max_qp(quality: u8) -> u8 {
    (51.0 - (quality.clamp(1, 100) as f32 - 1.0) * 41.0 / 99.0).round() as u8
}

pub(crate) struct H264Encoder {
    encoder: Encoder,
    muxer: Mp4Muxer,
    spec: VideoSpec,
    yuv: Vec<u8>,
}

impl H264Encoder {
    pub(crate) fn new(file: File, temp: &Path, target: &Path, spec: VideoSpec, options: &EncodeOptions) -> Result<Self> {
        let fps = spec.fps.as_f64() as f32;
        let pixels_per_second = spec.width as f64 * spec.height as f64 * spec.fps.as_f64();
        // The quantiser window decides quality; buffer-based rate control keeps one sample per
        // frame (no skipping) and, unlike the quality/bitrate modes, does not make OpenH264 print
        // a warning on stderr for every encoder. The bitrate only sizes its buffer.
        let bits_per_pixel = 0.02 * 100f64.powf((options.quality.clamp(1, 100) as f64 - 1.0) / 99.0);
        let qp = max_qp(options.quality);
        let config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bufferbased)
            .bitrate(BitRate::from_bps((pixels_per_second * bits_per_pixel).clamp(10_000.0, 200_000_000.0) as u32))
            .qp(QpRange::new(qp.saturating_sub(4), qp))
            .max_frame_rate(FrameRate::from_hz(fps))
            .skip_frames(false)
            .complexity(Complexity::High)
            .intra_frame_period(IntraFramePeriod::from_num_frames(options.keyframe_interval.max(1)))
            .num_threads(1)
            .vui(VuiConfig::bt709());
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| MediaError::Encoder { codec: "H.264", message: e.to_string() })?;
        let muxer = Mp4Muxer::new(file, temp, target, spec.width, spec.height, spec.fps)?;
        Ok(Self { encoder, muxer, spec, yuv: Vec::new() })
    }
}

impl FrameEncoder for H264Encoder {
    fn encode(&mut self, frame: &Frame) -> Result<()> {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        rgb_to_i420(frame.data(), w, h, &mut self.yuv);
        let source = YUVBuffer::from_vec(std::mem::take(&mut self.yuv), w, h);
        let bitstream = self
            .encoder
            .encode(&source)
            .map_err(|e| MediaError::Encoder { codec: "H.264", message: e.to_string() })?
            .to_vec();
        self.muxer.write_sample(&bitstream)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.muxer.finish()
    }
}

/// Decodes the H.264 track of an MP4 file frame by frame.
pub(crate) struct H264Reader {
    path: PathBuf,
    file: File,
    track: Mp4Track,
    decoder: Decoder,
    next_sample: usize,
    ready: VecDeque<Frame>,
    flushed: bool,
    sample: Vec<u8>,
}

impl H264Reader {
    pub(crate) fn new(path: &Path, file: File, track: Mp4Track) -> Result<Self> {
        if !matches!(track.codec.as_str(), "avc1" | "avc3") {
            return Err(MediaError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("its video codec is '{}'; the built-in MP4 reader decodes H.264 only", track.codec),
            });
        }
        let decoder = Decoder::new().map_err(|e| MediaError::Decoder { codec: "H.264", index: 0, message: e.to_string() })?;
        Ok(Self { path: path.to_path_buf(), file, track, decoder, next_sample: 0, ready: VecDeque::new(), flushed: false, sample: Vec::new() })
    }

    fn corrupt(&self, reason: String) -> MediaError {
        MediaError::Corrupt { path: self.path.clone(), container: "MP4", reason }
    }

    /// Reads sample `index` and rewrites it as Annex B (parameter sets first on sample 0).
    fn annex_b(&mut self, index: usize) -> Result<Vec<u8>> {
        let (offset, size) = self.track.samples[index];
        self.sample.resize(size as usize, 0);
        self.file.seek(SeekFrom::Start(offset)).map_err(io_err(&self.path))?;
        self.file
            .read_exact(&mut self.sample)
            .map_err(|_| self.corrupt(format!("sample {index} at byte {offset} runs past the end of the file")))?;
        let mut out = Vec::with_capacity(size as usize + 64);
        if index == 0 {
            for ps in self.track.sps.iter().chain(&self.track.pps) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(ps);
            }
        }
        let n = self.track.nal_length_size;
        let mut at = 0;
        while at + n <= self.sample.len() {
            let len = self.sample[at..at + n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            at += n;
            let Some(nal) = self.sample.get(at..at + len) else {
                return Err(self.corrupt(format!("a NAL unit in sample {index} is longer than the sample")));
            };
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
            at += len;
        }
        Ok(out)
    }

    fn to_frame(yuv: &impl YUVSource) -> Frame {
        let (w, h) = yuv.dimensions();
        let (ys, us, _) = yuv.strides();
        let mut rgb = vec![0u8; w * h * 3];
        // OpenH264 does not report the stream's VUI; Reel's own files are BT.709 limited range.
        let planes = YuvPlanes { y: yuv.y(), u: yuv.u(), v: yuv.v(), y_stride: ys, uv_stride: us };
        i420_to_rgb(&planes, w, h, Matrix::BT709_LIMITED, &mut rgb);
        Frame::from_rgb(w as u32, h as u32, rgb).expect("buffer sized from its dimensions")
    }
}

impl Iterator for H264Reader {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(Ok(frame));
            }
            if self.next_sample < self.track.samples.len() {
                let index = self.next_sample;
                self.next_sample += 1;
                let packet = match self.annex_b(index) {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e)),
                };
                match self.decoder.decode(&packet) {
                    Ok(Some(yuv)) => self.ready.push_back(Self::to_frame(&yuv)),
                    Ok(None) => {}
                    Err(e) => {
                        return Some(Err(MediaError::Decoder { codec: "H.264", index: index as u64, message: e.to_string() }))
                    }
                }
            } else if !self.flushed {
                self.flushed = true;
                match self.decoder.flush_remaining() {
                    Ok(frames) => {
                        let frames: Vec<Frame> = frames.iter().map(Self::to_frame).collect();
                        self.ready.extend(frames);
                    }
                    Err(e) => {
                        let index = self.track.samples.len() as u64;
                        return Some(Err(MediaError::Decoder { codec: "H.264", index, message: e.to_string() }));
                    }
                }
            } else {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::max_qp;

    #[test]
    fn quality_maps_onto_the_quantiser_range() {
        assert_eq!(max_qp(1), 51);
        assert_eq!(max_qp(100), 10);
        assert!(max_qp(85) < max_qp(50));
    }
}
