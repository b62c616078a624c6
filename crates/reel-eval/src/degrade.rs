//! Damage done to clips on purpose, to measure how far the scorer can be trusted on clips
//! that are not pixel-perfect (as generated clips never are).

use std::path::Path;

use reel_data::rng::Rng;
use reel_media::{EncodeOptions, Frame, Rational, VideoFormat};
use serde::{Deserialize, Serialize};

use crate::image::Rgb;

/// One kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Degradation {
    /// Gaussian blur of `sigma` pixels.
    Blur { sigma: f32 },
    /// Gaussian noise of `sigma` (8-bit levels), the same seed giving the same noise.
    Noise { sigma: f32, seed: u64 },
    /// Per-channel gain and offset (a colour cast): `c' = gain·c + offset`.
    ColorShift { gain: [f32; 3], offset: [f32; 3] },
    /// A round trip through Reel's own MP4 (H.264) encoder at `quality` (1–100).
    Compression { quality: u8 },
    /// Down to `factor` of the size and back up, bilinear both ways.
    Rescale { factor: f32 },
}

impl Degradation {
    /// The set the scorer's documented accuracy is measured on.
    pub fn standard() -> Vec<(&'static str, Degradation)> {
        vec![
            ("blur σ=1", Self::Blur { sigma: 1.0 }),
            ("blur σ=2", Self::Blur { sigma: 2.0 }),
            ("noise σ=10", Self::Noise { sigma: 10.0, seed: 7 }),
            ("noise σ=25", Self::Noise { sigma: 25.0, seed: 7 }),
            ("colour shift", Self::ColorShift { gain: [1.1, 0.95, 0.9], offset: [8.0, 0.0, -8.0] }),
            ("h264 quality 85 (default)", Self::Compression { quality: 85 }),
            ("h264 quality 10", Self::Compression { quality: 10 }),
            ("h264 quality 1", Self::Compression { quality: 1 }),
            ("down-up ½", Self::Rescale { factor: 0.5 }),
            ("down-up ¼", Self::Rescale { factor: 0.25 }),
        ]
    }

    /// Applies the damage to a whole clip.
    pub fn apply(&self, frames: &[Frame]) -> reel_media::Result<Vec<Frame>> {
        match *self {
            Self::Compression { quality } => compress(frames, quality),
            _ => Ok(frames.iter().enumerate().map(|(t, f)| self.apply_frame(f, t as u64)).collect()),
        }
    }

    fn apply_frame(&self, frame: &Frame, index: u64) -> Frame {
        let img = Rgb::from_frame(frame);
        let out = match *self {
            Self::Blur { sigma } => img.blur(sigma),
            Self::Noise { sigma, seed } => {
                let mut img = img;
                let mut rng = Rng::for_item(seed, NOISE_STREAM, index);
                for p in &mut img.data {
                    for c in p.iter_mut() {
                        *c += sigma * gaussian(&mut rng);
                    }
                }
                img
            }
            Self::ColorShift { gain, offset } => {
                let mut img = img;
                for p in &mut img.data {
                    *p = [0, 1, 2].map(|c| p[c] * gain[c] + offset[c]);
                }
                img
            }
            Self::Rescale { factor } => {
                let w = ((img.width as f32 * factor).round() as usize).max(1);
                let h = ((img.height as f32 * factor).round() as usize).max(1);
                img.resize(w, h).resize(img.width, img.height)
            }
            Self::Compression { .. } => img,
        };
        out.to_frame()
    }
}

/// Stream of reel-data's [`Rng`] that noise frames draw from (frame index = item).
const NOISE_STREAM: u64 = 0x6e6f697365;

/// A standard normal draw (Box–Muller).
/// A standard normal draw (Box–Muller).
pub(crate) fn gaussian(rng: &mut Rng) -> f32 {
    let (u, v) = (rng.unit().max(1e-12), rng.unit());
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

fn compress(frames: &[Frame], quality: u8) -> reel_media::Result<Vec<Frame>> {
    let dir = std::env::temp_dir().join(format!("reel-degrade-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).map_err(|e| reel_media::MediaError::Io { path: dir.clone(), source: e })?;
    let path = dir.join("clip.mp4");
    let options = EncodeOptions { quality, ..Default::default() };
    let result = reel_media::write_video(&path, Some(VideoFormat::Mp4), Rational::integer(8), frames, &options).and_then(|p| read_back(&p));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn read_back(path: &Path) -> reel_media::Result<Vec<Frame>> {
    Ok(reel_media::read_video(path)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip() -> Vec<Frame> {
        (0..3).map(|i| Frame::filled(32, 32, [100 + 10 * i, 50, 200])).collect()
    }

    #[test]
    fn noise_is_seeded_and_has_the_asked_spread() {
        let d = Degradation::Noise { sigma: 10.0, seed: 3 };
        let a = d.apply(&clip()).unwrap();
        assert_eq!(a, d.apply(&clip()).unwrap());
        let diffs: Vec<f64> = a[0].data().iter().zip(clip()[0].data()).map(|(&x, &y)| x as f64 - y as f64).collect();
        let sd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        assert!((sd - 10.0).abs() < 1.0, "{sd}");
    }

    #[test]
    fn colour_shift_is_gain_then_offset() {
        let d = Degradation::ColorShift { gain: [2.0, 1.0, 0.5], offset: [1.0, -10.0, 0.0] };
        let out = d.apply(&clip()).unwrap();
        assert_eq!(out[0].pixel(0, 0), [201, 40, 100]);
    }

    #[test]
    fn flat_frames_survive_blur_rescale_and_compression() {
        for d in [Degradation::Blur { sigma: 2.0 }, Degradation::Rescale { factor: 0.25 }, Degradation::Compression { quality: 50 }] {
            let out = d.apply(&clip()).unwrap();
            assert_eq!(out.len(), 3);
            let p = out[1].pixel(16, 16);
            assert!((p[0] as i32 - 110).abs() <= 3 && (p[2] as i32 - 200).abs() <= 3, "{d:?}: {p:?}");
        }
    }
}
