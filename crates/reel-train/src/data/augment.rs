//! Per-clip augmentation: crop and resize into a bucket, horizontal flip (with the caption's
//! left and right swapped), light colour jitter (never hue: colour words must stay true).

use image::imageops::{self, FilterType};
use image::RgbImage;
use reel_media::Frame;

/// The crop of a `w`×`h` source that covers a `tw`×`th` target at the target's aspect
/// ratio: `(x, y, cw, ch)`, placed at fractions `fx`, `fy` ∈ [0, 1] of the slack.
pub fn cover_crop(w: u32, h: u32, tw: u32, th: u32, fx: f64, fy: f64) -> (u32, u32, u32, u32) {
    let scale = (tw as f64 / w as f64).max(th as f64 / h as f64);
    let cw = ((tw as f64 / scale).round() as u32).clamp(1, w);
    let ch = ((th as f64 / scale).round() as u32).clamp(1, h);
    let x = ((w - cw) as f64 * fx.clamp(0.0, 1.0)).round() as u32;
    let y = ((h - ch) as f64 * fy.clamp(0.0, 1.0)).round() as u32;
    (x, y, cw, ch)
}

/// Crops `frame` to `crop` and resizes it to `tw`×`th` (triangle filter; no work when the sizes match).
pub fn crop_resize(frame: &Frame, crop: (u32, u32, u32, u32), tw: u32, th: u32) -> Frame {
    let (x, y, cw, ch) = crop;
    if (x, y, cw, ch) == (0, 0, tw, th) && frame.width() == tw && frame.height() == th {
        return frame.clone();
    }
    let img = RgbImage::from_raw(frame.width(), frame.height(), frame.data().to_vec()).expect("frame buffers are w·h·3");
    let cropped = imageops::crop_imm(&img, x, y, cw, ch).to_image();
    let out = if (cw, ch) == (tw, th) { cropped } else { imageops::resize(&cropped, tw, th, FilterType::Triangle) };
    Frame::from_rgb(tw, th, out.into_raw()).expect("resize keeps the size it was asked for")
}

/// Mirrors a frame left to right.
pub fn flip_frame(frame: &mut Frame) {
    let w = frame.width() as usize;
    for row in frame.data_mut().chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            let (a, b) = (3 * x, 3 * (w - 1 - x));
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// The caption of a mirrored clip: "left" and "right" swapped wherever they occur
/// ("moving left" → "moving right", "the camera pans right" → "… pans left"), keeping case.
pub fn mirror_caption(caption: &str) -> String {
    let lower = caption.to_ascii_lowercase();
    let mut out = String::with_capacity(caption.len() + 4);
    let mut i = 0;
    while i < caption.len() {
        let (from, to) = if lower[i..].starts_with("left") {
            ("left", "right")
        } else if lower[i..].starts_with("right") {
            ("right", "left")
        } else {
            let c = caption[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        let original = &caption[i..i + from.len()];
        if original.chars().all(|c| c.is_ascii_uppercase()) {
            out.push_str(&to.to_ascii_uppercase());
        } else if original.starts_with(|c: char| c.is_ascii_uppercase()) {
            out.push_str(&to[..1].to_ascii_uppercase());
            out.push_str(&to[1..]);
        } else {
            out.push_str(to);
        }
        i += from.len();
    }
    out
}

/// Brightness, contrast and saturation factors (each 1 ± amplitude).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl Jitter {
    pub const NONE: Jitter = Jitter { brightness: 1.0, contrast: 1.0, saturation: 1.0 };

    /// Applies the jitter to RGB values in [0, 255] (one clip's frames, interleaved RGB).
    pub fn apply(&self, rgb: &mut [f32]) {
        if *self == Self::NONE || rgb.is_empty() {
            return;
        }
        let luma = |p: &[f32]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        let mean = rgb.chunks_exact(3).map(luma).sum::<f32>() / (rgb.len() / 3) as f32;
        for p in rgb.chunks_exact_mut(3) {
            let y = luma(p);
            for v in p.iter_mut() {
                let saturated = y + (*v - y) * self.saturation;
                let contrasted = mean + (saturated - mean) * self.contrast;
                *v = (contrasted * self.brightness).clamp(0.0, 255.0);
            }
        }
    }
}

/// Frames (interleaved RGB bytes) → `[3, F, H, W]` in [−1, 1], with `jitter` applied.
pub fn to_planar(frames: &[Frame], jitter: Jitter) -> Vec<f32> {
    let (w, h) = (frames[0].width() as usize, frames[0].height() as usize);
    let plane = w * h;
    let f = frames.len();
    let mut out = vec![0f32; 3 * f * plane];
    let mut rgb = Vec::with_capacity(plane * 3);
    for (t, frame) in frames.iter().enumerate() {
        rgb.clear();
        rgb.extend(frame.data().iter().map(|&v| v as f32));
        jitter.apply(&mut rgb);
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[(c * f + t) * plane + i] = p[c] / 127.5 - 1.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_swap_left_and_right_once() {
        assert_eq!(mirror_caption("a red ball moving left, the camera pans right"), "a red ball moving right, the camera pans left");
        assert_eq!(mirror_caption("Right then LEFT"), "Left then RIGHT");
        assert_eq!(mirror_caption("a blue square rising"), "a blue square rising");
    }

    #[test]
    fn flipping_twice_is_the_identity_and_mirrors_columns() {
        let data: Vec<u8> = (0..3 * 3 * 2).map(|v| v as u8).collect();
        let original = Frame::from_rgb(3, 2, data).unwrap();
        let mut f = original.clone();
        flip_frame(&mut f);
        assert_eq!(f.pixel(0, 0), original.pixel(2, 0));
        assert_eq!(f.pixel(1, 1), original.pixel(1, 1));
        flip_frame(&mut f);
        assert_eq!(f, original);
    }

    #[test]
    fn cover_crops_keep_the_target_aspect() {
        // 160x90 into 64x64: a 90x90 square, centred at fx = 0.5.
        assert_eq!(cover_crop(160, 90, 64, 64, 0.5, 0.5), (35, 0, 90, 90));
        assert_eq!(cover_crop(160, 90, 64, 64, 0.0, 0.5), (0, 0, 90, 90));
        assert_eq!(cover_crop(64, 64, 64, 64, 0.3, 0.9), (0, 0, 64, 64));
        let f = Frame::filled(160, 90, [10, 20, 30]);
        let out = crop_resize(&f, cover_crop(160, 90, 32, 16, 1.0, 0.0), 32, 16);
        assert_eq!((out.width(), out.height(), out.pixel(5, 5)), (32, 16, [10, 20, 30]));
    }

    #[test]
    fn jitter_by_hand() {
        // Grey pixel 100 and 200: mean luma 150; contrast 2 → 50 and 250; brightness 0.5 → 25, 125.
        let mut rgb = vec![100.0, 100.0, 100.0, 200.0, 200.0, 200.0];
        Jitter { brightness: 0.5, contrast: 2.0, saturation: 1.0 }.apply(&mut rgb);
        assert_eq!(rgb, vec![25.0, 25.0, 25.0, 125.0, 125.0, 125.0]);
        // Saturation 0 turns a colour into its luma.
        let mut rgb = vec![255.0, 0.0, 0.0];
        Jitter { brightness: 1.0, contrast: 1.0, saturation: 0.0 }.apply(&mut rgb);
        assert!(rgb.iter().all(|&v| (v - 0.299 * 255.0).abs() < 1e-3), "{rgb:?}");
    }

    #[test]
    fn planar_layout_is_channel_frame_row_column() {
        let a = Frame::filled(2, 1, [255, 0, 0]);
        let b = Frame::filled(2, 1, [0, 255, 0]);
        let x = to_planar(&[a, b], Jitter::NONE);
        // [3, 2, 1, 2]: R of frame 0, R of frame 1, G of frame 0, G of frame 1, B…
        assert_eq!(x, vec![1.0, 1.0, -1.0, -1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0]);
    }
}
