//! Temporal quality of any video, after VBench's dimensions (docs/eval.md has the formulas).
//!
//! Frames are read as RGB in [0, 1]; `T` frames of `N` pixels.
//! - **flicker**: the mean absolute change between consecutive frames over the pixels that
//!   change by less than [`STATIC_CHANGE`] (the static region; larger changes are motion).
//!   0 for a still video; lower is better.
//! - **motion smoothness**: 1 − the mean absolute error of predicting frame t from frames t−1
//!   and t+1 by motion-compensated averaging (symmetric 8×8 block matching on 16×16 windows, ±4 px). 1 for
//!   steady motion; higher is better.
//! - **subject consistency**: the mean over t ≥ 1 of (cos(φ₀, φₜ) + cos(φₜ₋₁, φₜ)) / 2, φ a
//!   translation-invariant appearance feature (√ of a 4×4×4 RGB histogram and of an 8-bin
//!   gradient-orientation histogram). Higher is better.
//! - **dynamic degree**: the mean over frame pairs of the largest 5% of 8×8 block motions
//!   (pixels per frame, over the width); a video is *dynamic* above [`DYNAMIC_MOTION`].

use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::image::{luma, Rgb};

/// Per-pixel change (mean over channels, 0–1) below which a pixel counts as static.
pub const STATIC_CHANGE: f32 = 0.1;
/// Block size and search radius for block matching.
const BLOCK: usize = 8;
const SEARCH: isize = 4;
const MARGIN: usize = 4;
/// Least motion (canvas widths per frame) of a dynamic video: a quarter pixel at 64 px.
pub const DYNAMIC_MOTION: f32 = 1.0 / 256.0;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemporalMetrics {
    pub flicker: f32,
    pub motion_smoothness: f32,
    pub subject_consistency: f32,
    /// Canvas widths per frame (largest 5% of block motions).
    pub motion: f32,
    pub dynamic: bool,
}

/// All four metrics of one video (a single frame: no flicker, smooth, consistent, still).
pub fn measure(frames: &[Frame]) -> TemporalMetrics {
    let planes: Vec<Plane> = frames.iter().map(Plane::from_frame).collect();
    let motion = dynamic_motion(&planes);
    TemporalMetrics {
        flicker: flicker(&planes),
        motion_smoothness: motion_smoothness(&planes),
        subject_consistency: subject_consistency(frames),
        motion,
        dynamic: motion >= DYNAMIC_MOTION,
    }
}

/// Means of a set's metrics, with the share of dynamic videos as `dynamic_degree`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemporalSummary {
    pub n: usize,
    pub flicker: f32,
    pub motion_smoothness: f32,
    pub subject_consistency: f32,
    pub motion: f32,
    pub dynamic_degree: f32,
}

pub fn summarize<'a>(metrics: impl IntoIterator<Item = &'a TemporalMetrics>) -> TemporalSummary {
    let mut s = TemporalSummary::default();
    for m in metrics {
        s.n += 1;
        s.flicker += m.flicker;
        s.motion_smoothness += m.motion_smoothness;
        s.subject_consistency += m.subject_consistency;
        s.motion += m.motion;
        s.dynamic_degree += m.dynamic as u8 as f32;
    }
    let n = s.n.max(1) as f32;
    TemporalSummary { n: s.n, flicker: s.flicker / n, motion_smoothness: s.motion_smoothness / n, subject_consistency: s.subject_consistency / n, motion: s.motion / n, dynamic_degree: s.dynamic_degree / n }
}

/// RGB in [0, 1] plus luma, row-major.
struct Plane {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
    luma: Vec<f32>,
}

impl Plane {
    fn from_frame(frame: &Frame) -> Self {
        let img = Rgb::from_frame(frame);
        let rgb: Vec<[f32; 3]> = img.data.iter().map(|p| p.map(|c| c / 255.0)).collect();
        let luma = rgb.iter().map(|&p| luma(p)).collect();
        Self { w: img.width, h: img.height, rgb, luma }
    }
}

fn change(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).abs() + (a[1] - b[1]).abs() + (a[2] - b[2]).abs()) / 3.0
}

/// Mean change over the static region, averaged over frame pairs with a static region.
fn flicker(planes: &[Plane]) -> f32 {
    let (mut sum, mut pairs) = (0.0f32, 0usize);
    for pair in planes.windows(2) {
        let (mut s, mut n) = (0.0f32, 0usize);
        for (a, b) in pair[0].rgb.iter().zip(&pair[1].rgb) {
            let d = change(*a, *b);
            if d < STATIC_CHANGE {
                s += d;
                n += 1;
            }
        }
        if n > 0 {
            sum += s / n as f32;
            pairs += 1;
        }
    }
    if pairs == 0 {
        0.0
    } else {
        sum / pairs as f32
    }
}

/// Sum of absolute luma differences between the window around block (bx, by) (the block and
/// [`MARGIN`] pixels about it, which settles most aperture ambiguities) of `a` shifted by
/// `sign_a·v` and of `b` shifted by `sign_b·v`, coordinates clamped (edges repeat).
fn block_sad(a: &Plane, b: &Plane, bx: usize, by: usize, v: (isize, isize), sign_a: isize, sign_b: isize) -> f32 {
    let clamp = |c: isize, n: usize| c.clamp(0, n as isize - 1) as usize;
    let mut sad = 0.0;
    let (y0, x0) = (by.saturating_sub(MARGIN), bx.saturating_sub(MARGIN));
    for y in y0..(by + BLOCK + MARGIN).min(a.h) {
        for x in x0..(bx + BLOCK + MARGIN).min(a.w) {
            let (ax, ay) = (clamp(x as isize + sign_a * v.0, a.w), clamp(y as isize + sign_a * v.1, a.h));
            let (cx, cy) = (clamp(x as isize + sign_b * v.0, b.w), clamp(y as isize + sign_b * v.1, b.h));
            sad += (a.luma[ay * a.w + ax] - b.luma[cy * b.w + cx]).abs();
        }
    }
    sad
}

/// The displacement minimising the SAD; among equal SADs the shortest (the zero vector first),
/// so flat blocks, which match anything, report no motion.
fn best_vector(sad: impl Fn((isize, isize)) -> f32) -> (isize, isize) {
    let mut candidates: Vec<(isize, isize)> = (-SEARCH..=SEARCH).flat_map(|dy| (-SEARCH..=SEARCH).map(move |dx| (dx, dy))).collect();
    candidates.sort_by_key(|&(dx, dy)| dx * dx + dy * dy);
    let mut best = ((0, 0), f32::MAX);
    for v in candidates {
        let s = sad(v);
        if s < best.1 - 1e-6 {
            best = (v, s);
        }
    }
    best.0
}

fn motion_smoothness(planes: &[Plane]) -> f32 {
    if planes.len() < 3 {
        return 1.0;
    }
    let mut errors = Vec::new();
    for t in 1..planes.len() - 1 {
        let (prev, cur, next) = (&planes[t - 1], &planes[t], &planes[t + 1]);
        let (mut err, mut n) = (0.0f32, 0usize);
        for by in (0..cur.h).step_by(BLOCK) {
            for bx in (0..cur.w).step_by(BLOCK) {
                let v = best_vector(|v| block_sad(prev, next, bx, by, v, -1, 1));
                for y in by..(by + BLOCK).min(cur.h) {
                    for x in bx..(bx + BLOCK).min(cur.w) {
                        let clamp = |c: isize, n: usize| c.clamp(0, n as isize - 1) as usize;
                        let p = prev.rgb[clamp(y as isize - v.1, cur.h) * cur.w + clamp(x as isize - v.0, cur.w)];
                        let q = next.rgb[clamp(y as isize + v.1, cur.h) * cur.w + clamp(x as isize + v.0, cur.w)];
                        let predicted = [0, 1, 2].map(|c| 0.5 * (p[c] + q[c]));
                        err += change(predicted, cur.rgb[y * cur.w + x]);
                        n += 1;
                    }
                }
            }
        }
        errors.push(err / n.max(1) as f32);
    }
    1.0 - errors.iter().sum::<f32>() / errors.len() as f32
}

fn dynamic_motion(planes: &[Plane]) -> f32 {
    if planes.len() < 2 {
        return 0.0;
    }
    let mut per_pair = Vec::new();
    for pair in planes.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let mut magnitudes = Vec::new();
        for by in (0..b.h).step_by(BLOCK) {
            for bx in (0..b.w).step_by(BLOCK) {
                // b(p) ≈ a(p − v): sign_a = −1 on a, b unshifted.
                let v = best_vector(|v| block_sad(a, b, bx, by, v, -1, 0));
                magnitudes.push(((v.0 * v.0 + v.1 * v.1) as f32).sqrt());
            }
        }
        magnitudes.sort_by(|x, y| y.total_cmp(x));
        let top = magnitudes.len().div_ceil(20).max(1);
        per_pair.push(magnitudes[..top].iter().sum::<f32>() / top as f32 / a.w as f32);
    }
    per_pair.iter().sum::<f32>() / per_pair.len() as f32
}

/// √-histogram appearance feature: 64 RGB bins then 8 gradient-orientation bins, each part
/// normalised to sum 1 before the square root (a part with no mass stays zero).
pub fn appearance(frame: &Frame) -> Vec<f32> {
    let mut colour = vec![0.0f32; 64];
    for p in frame.data().chunks_exact(3) {
        let bin = (p[0] as usize / 64) * 16 + (p[1] as usize / 64) * 4 + p[2] as usize / 64;
        colour[bin] += 1.0;
    }
    let mut gradient = vec![0.0f32; 8];
    let l = Rgb::from_frame(frame).luma();
    for y in 0..l.height.saturating_sub(1) {
        for x in 0..l.width.saturating_sub(1) {
            let (gx, gy) = (l.at(x + 1, y) - l.at(x, y), l.at(x, y + 1) - l.at(x, y));
            let m = (gx * gx + gy * gy).sqrt();
            if m > 0.0 {
                let angle = gy.atan2(gx).rem_euclid(std::f32::consts::TAU);
                gradient[((angle / std::f32::consts::TAU * 8.0) as usize).min(7)] += m;
            }
        }
    }
    let mut feature = Vec::with_capacity(72);
    for part in [colour, gradient] {
        let sum: f32 = part.iter().sum();
        feature.extend(part.iter().map(|v| if sum > 0.0 { (v / sum).sqrt() } else { 0.0 }));
    }
    feature
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f32>().sqrt(), b.iter().map(|x| x * x).sum::<f32>().sqrt());
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na * nb)
}

fn subject_consistency(frames: &[Frame]) -> f32 {
    if frames.len() < 2 {
        return 1.0;
    }
    let features: Vec<Vec<f32>> = frames.iter().map(appearance).collect();
    let sum: f32 = (1..features.len()).map(|t| 0.5 * (cosine(&features[0], &features[t]) + cosine(&features[t - 1], &features[t]))).sum();
    sum / (features.len() - 1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(v: u8) -> Frame {
        Frame::filled(16, 16, [v, v, v])
    }

    /// A 16×16 black frame with a white 4×4 square whose left edge is at `x`.
    fn square_at(x: u32) -> Frame {
        let mut f = Frame::filled(16, 16, [0, 0, 0]);
        for y in 6..10 {
            for xx in x..x + 4 {
                let i = ((y * 16 + xx) * 3) as usize;
                f.data_mut()[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        f
    }

    #[test]
    fn flicker_is_the_mean_small_change() {
        // Brightness 100, 110, 100: every pixel changes by 10/255 < 0.1 both times.
        let m = measure(&[grey(100), grey(110), grey(100)]);
        assert!((m.flicker - 10.0 / 255.0).abs() < 1e-6, "{}", m.flicker);
        // A jump of 100 levels is motion, not flicker: no static pixels in that pair.
        assert_eq!(measure(&[grey(0), grey(100)]).flicker, 0.0);
        assert_eq!(measure(&vec![grey(7); 4]).flicker, 0.0);
        // Hand count: moving square 2 px, 16 pixels change fully (motion), 240 are static with
        // change 0, so flicker is 0.
        assert_eq!(measure(&[square_at(2), square_at(4)]).flicker, 0.0);
    }

    #[test]
    fn smoothness_is_one_for_steady_motion_and_drops_for_jumps() {
        let steady: Vec<Frame> = (0..5).map(|t| square_at(2 + 2 * t)).collect();
        let m = measure(&steady);
        assert!((m.motion_smoothness - 1.0).abs() < 1e-6, "{}", m.motion_smoothness);
        // A linear fade is predicted exactly by the average of its neighbours.
        assert!((measure(&[grey(0), grey(50), grey(100)]).motion_smoothness - 1.0).abs() < 1e-6);
        // 0, 100, 0: the prediction is 0, the frame is 100/255 everywhere.
        let m = measure(&[grey(0), grey(100), grey(0)]);
        assert!((m.motion_smoothness - (1.0 - 100.0 / 255.0)).abs() < 1e-5, "{}", m.motion_smoothness);
    }

    #[test]
    fn dynamic_degree_follows_block_motion() {
        let steady: Vec<Frame> = (0..4).map(|t| square_at(2 + 2 * t)).collect();
        let m = measure(&steady);
        // 4 blocks of 8×8 at 16×16; the top 5% is one block, which moved 2 px: 2/16 a frame.
        assert!((m.motion - 2.0 / 16.0).abs() < 1e-6, "{}", m.motion);
        assert!(m.dynamic);
        let still = measure(&vec![square_at(3); 4]);
        assert_eq!(still.motion, 0.0);
        assert!(!still.dynamic);
        let s = summarize([&m, &still]);
        assert_eq!(s.dynamic_degree, 0.5);
        assert_eq!(s.n, 2);
    }

    #[test]
    fn subject_consistency_by_hand() {
        assert!((measure(&[square_at(2), square_at(6)]).subject_consistency - 1.0).abs() < 1e-6, "translation keeps the appearance");
        // Two flat frames of colours in different bins, no gradients: cosine 0.
        assert_eq!(measure(&[grey(0), grey(255)]).subject_consistency, 0.0);
        // Flat black vs half black/half white (left/right): colour part √(1)·√(½) = 0.7071;
        // the flat frame has no gradient part, so |φ₀| = 1 and |φ₁| = √2: cos = 0.7071/√2 = ½.
        let mut half = grey(0);
        for y in 0..16 {
            for x in 8..16 {
                let i = (y * 16 + x) * 3;
                half.data_mut()[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let c = measure(&[grey(0), half]).subject_consistency;
        assert!((c - 0.5).abs() < 1e-6, "{c}");
    }
}
