//! Frames, frame rates and the size rules every format shares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MediaError, Result};

/// Smallest accepted width or height.
pub const MIN_SIDE: u32 = 16;
/// Largest accepted width or height.
pub const MAX_SIDE: u32 = 1920;

/// One video frame: 8-bit sRGB, interleaved `RGBRGB…`, rows top to bottom.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Frame {
    /// A frame filled with one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let data = rgb.iter().copied().cycle().take(width as usize * height as usize * 3).collect();
        Self { width, height, data }
    }

    /// Wraps an RGB buffer; its length must be `width * height * 3`.
    pub fn from_rgb(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(MediaError::BufferSize { width, height, expected, got: data.len() });
        }
        Ok(Self { width, height, data })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGB bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The RGB bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Peak signal-to-noise ratio in dB against `other` (same size), over all three channels.
    /// Identical frames give `f64::INFINITY`.
    pub fn psnr(&self, other: &Frame) -> f64 {
        assert_eq!((self.width, self.height), (other.width, other.height), "psnr of frames of different sizes");
        let mse = mean_squared_error(&self.data, &other.data);
        psnr_from_mse(mse)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({}x{} rgb8)", self.width, self.height)
    }
}

pub(crate) fn mean_squared_error(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a.iter().zip(b).map(|(&x, &y)| (x as i64 - y as i64).pow(2) as u64).sum();
    sum as f64 / a.len().max(1) as f64
}

/// PSNR in dB for 8-bit data from a mean squared error.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// PSNR over whole videos: the mean squared error over every frame, then dB.
pub fn video_psnr(a: &[Frame], b: &[Frame]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr of videos with different frame counts");
    let mse = a.iter().zip(b).map(|(x, y)| mean_squared_error(&x.data, &y.data)).sum::<f64>() / a.len().max(1) as f64;
    psnr_from_mse(mse)
}

/// A frame rate as an exact fraction, e.g. `24000/1001`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    /// A reduced fraction; panics on a zero denominator (parse user input with [`FromStr`]).
    pub fn new(num: u32, den: u32) -> Self {
        assert!(den != 0, "zero denominator");
        let g = gcd(num as u64, den as u64).max(1) as u32;
        Self { num: num / g, den: den / g }
    }

    /// A whole number of frames per second.
    pub const fn integer(num: u32) -> Self {
        Self { num, den: 1 }
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Seconds covered by `frames` frames.
    pub fn duration_of(self, frames: u64) -> f64 {
        frames as f64 * self.den as f64 / self.num as f64
    }

    /// A fraction for a measured rate: the NTSC rates (24000/1001, 30000/1001,
    /// 60000/1001, …) within 0.05%, whole numbers within 1%, else thousandths.
    pub fn approximate(fps: f64) -> Option<Self> {
        if !(fps.is_finite() && fps > 0.0 && fps < 1_000_000.0) {
            return None;
        }
        for num in [24_000u32, 30_000, 48_000, 60_000, 120_000] {
            if (num as f64 / 1001.0 - fps).abs() <= fps * 5e-4 {
                return Some(Self::new(num, 1001));
            }
        }
        let whole = fps.round();
        if whole >= 1.0 && (whole - fps).abs() <= fps * 1e-2 {
            return Some(Self::integer(whole as u32));
        }
        Some(Self::new((fps * 1000.0).round().max(1.0) as u32, 1000))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl FromStr for Rational {
    type Err = MediaError;

    /// Accepts `24`, `24000/1001` or `29.97`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| MediaError::InvalidFrameRate { given: s.to_string(), reason };
        let s = s.trim();
        let r = if let Some((n, d)) = s.split_once('/') {
            let num: u32 = n.trim().parse().map_err(|_| bad("the numerator is not a whole number"))?;
            let den: u32 = d.trim().parse().map_err(|_| bad("the denominator is not a whole number"))?;
            if den == 0 {
                return Err(bad("the denominator is zero"));
            }
            Self::new(num, den)
        } else if let Some((whole, frac)) = s.split_once('.') {
            if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) || !whole.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not a number"));
            }
            let den = 10u64.pow(frac.len() as u32);
            let num = format!("{whole}{frac}").parse::<u64>().map_err(|_| bad("not a number"))?;
            if num > u32::MAX as u64 {
                return Err(bad("too large"));
            }
            Self::new(num as u32, den as u32)
        } else {
            Self::integer(s.parse().map_err(|_| bad("not a number"))?)
        };
        if r.num == 0 {
            return Err(bad("it must be greater than zero"));
        }
        if r.as_f64() > 1000.0 {
            return Err(bad("more than 1000 frames per second"));
        }
        Ok(r)
    }
}

impl Serialize for Rational {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rational {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u32),
            Float(f64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(n) => format!("{n}").parse(),
            Repr::Float(x) => format!("{x}").parse(),
            Repr::Str(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The shape of a video every writer is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoSpec {
    pub width: u32,
    pub height: u32,
    pub fps: Rational,
}

impl VideoSpec {
    /// Checks the size rules (even sides from 16 to 1920) and builds a spec.
    pub fn new(width: u32, height: u32, fps: Rational) -> Result<Self> {
        check_size(width, height)?;
        Ok(Self { width, height, fps })
    }
}

/// Even width and height from [`MIN_SIDE`] to [`MAX_SIDE`].
pub fn check_size(width: u32, height: u32) -> Result<()> {
    let bad = |reason| Err(MediaError::InvalidSize { width, height, reason });
    if width == 0 || height == 0 {
        return bad("width and height must be greater than zero");
    }
    if width % 2 == 1 || height % 2 == 1 {
        return bad("width and height must be even (4:2:0 video codecs need it)");
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return bad("the smallest side allowed is 16");
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return bad("the largest side allowed is 1920");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_parses_integers_fractions_and_decimals() {
        assert_eq!("24".parse::<Rational>().unwrap(), Rational::integer(24));
        assert_eq!("24000/1001".parse::<Rational>().unwrap(), Rational { num: 24000, den: 1001 });
        assert_eq!("29.97".parse::<Rational>().unwrap(), Rational { num: 2997, den: 100 });
        assert_eq!("30/2".parse::<Rational>().unwrap(), Rational::integer(15));
        for bad in ["0", "-3", "1/0", "abc", "", "2000", "1.2.3"] {
            assert!(bad.parse::<Rational>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn rational_round_trips_through_json() {
        let r = Rational::new(24000, 1001);
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, "\"24000/1001\"");
        assert_eq!(serde_json::from_str::<Rational>(&s).unwrap(), r);
        assert_eq!(serde_json::from_str::<Rational>("8").unwrap(), Rational::integer(8));
    }

    #[test]
    fn approximate_snaps_to_video_rates() {
        assert_eq!(Rational::approximate(23.976_023_976), Some(Rational::new(24000, 1001)));
        assert_eq!(Rational::approximate(7.99), Some(Rational::integer(8)));
        assert_eq!(Rational::approximate(29.97), Some(Rational::new(30000, 1001)));
        assert_eq!(Rational::approximate(12.5), Some(Rational::new(25, 2)));
        assert_eq!(Rational::approximate(0.0), None);
    }

    #[test]
    fn size_rules() {
        assert!(check_size(64, 64).is_ok());
        assert!(check_size(16, 1920).is_ok());
        for (w, h) in [(0, 64), (63, 64), (64, 15), (14, 64), (1922, 64)] {
            assert!(check_size(w, h).is_err(), "{w}x{h} should be rejected");
        }
    }

    #[test]
    fn psnr_of_identical_frames_is_infinite_and_drops_with_noise() {
        let a = Frame::filled(16, 16, [10, 20, 30]);
        assert!(a.psnr(&a).is_infinite());
        let mut b = a.clone();
        b.data_mut()[0] = 13;
        let p = a.psnr(&b);
        assert!(p > 40.0 && p.is_finite(), "{p}");
    }
}
