//! Float images for measuring: RGB and grey planes in 0–255, bilinear sampling, blur, resize.

use reel_media::Frame;

/// An RGB image with `f32` channels in 0–255, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<[f32; 3]>,
}

/// A single-channel image in 0–255, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Rgb {
    pub fn from_frame(frame: &Frame) -> Self {
        let data = frame.data().chunks_exact(3).map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]).collect();
        Self { width: frame.width() as usize, height: frame.height() as usize, data }
    }

    /// Rounds and clamps back to 8-bit.
    pub fn to_frame(&self) -> Frame {
        let data = self.data.iter().flat_map(|p| p.map(|c| c.round().clamp(0.0, 255.0) as u8)).collect();
        Frame::from_rgb(self.width as u32, self.height as u32, data).expect("sized from width and height")
    }

    pub fn at(&self, x: usize, y: usize) -> [f32; 3] {
        self.data[y * self.width + x]
    }

    /// Rec. 709 luma.
    pub fn luma(&self) -> Gray {
        Gray { width: self.width, height: self.height, data: self.data.iter().map(|&p| luma(p)).collect() }
    }

    /// Separable Gaussian blur with edge clamping (each channel through [`blur_plane`]).
    pub fn blur(&self, sigma: f32) -> Self {
        let (w, h) = (self.width, self.height);
        let channels = [0, 1, 2].map(|c| blur_plane(&self.data.iter().map(|p| p[c]).collect::<Vec<_>>(), w, h, sigma, Edge::Clamp));
        Self { width: w, height: h, data: (0..w * h).map(|i| [channels[0][i], channels[1][i], channels[2][i]]).collect() }
    }

    /// Bilinear resize (pixel centres aligned, as `align_corners = false`).
    pub fn resize(&self, width: usize, height: usize) -> Self {
        let mut data = Vec::with_capacity(width * height);
        let (sx, sy) = (self.width as f32 / width as f32, self.height as f32 / height as f32);
        for y in 0..height {
            for x in 0..width {
                let fx = (x as f32 + 0.5) * sx - 0.5;
                let fy = (y as f32 + 0.5) * sy - 0.5;
                data.push(self.sample(fx, fy));
            }
        }
        Self { width, height, data }
    }

    /// Bilinear sample at pixel coordinates (pixel centres at integers), clamped at the edges.
    pub fn sample(&self, x: f32, y: f32) -> [f32; 3] {
        let (x, y) = (x.clamp(0.0, (self.width - 1) as f32), y.clamp(0.0, (self.height - 1) as f32));
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let (a, b, c, d) = (self.at(x0, y0), self.at(x1, y0), self.at(x0, y1), self.at(x1, y1));
        [0, 1, 2].map(|k| (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy)
    }
}

impl Gray {
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Bilinear sample; `None` outside the image.
    pub fn sample(&self, x: f32, y: f32) -> Option<f32> {
        if x < 0.0 || y < 0.0 || x > (self.width - 1) as f32 || y > (self.height - 1) as f32 {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let top = self.at(x0, y0) * (1.0 - fx) + self.at(x1, y0) * fx;
        let bottom = self.at(x0, y1) * (1.0 - fx) + self.at(x1, y1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }
}

/// Rec. 709 luma of an RGB triple.
pub fn luma(p: [f32; 3]) -> f32 {
    0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]
}

/// Euclidean distance between two RGB triples.
pub fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// What a blur reads beyond the edge of a plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// The nearest edge pixel.
    Clamp,
    /// Zeros.
    Zero,
}

/// Separable Gaussian blur of a `w × h` plane; `sigma <= 0` copies.
pub fn blur_plane(src: &[f32], w: usize, h: usize, sigma: f32, edge: Edge) -> Vec<f32> {
    let kernel = gaussian_kernel(sigma);
    if kernel.len() == 1 {
        return src.to_vec();
    }
    let r = (kernel.len() / 2) as isize;
    let pass = |src: &[f32], horizontal: bool| {
        let (len, stride) = if horizontal { (w, 1) } else { (h, w) };
        let mut out = vec![0.0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let at = if horizontal { x } else { y } as isize;
                let mut acc = 0.0;
                for (k, kw) in kernel.iter().enumerate() {
                    let mut j = at + k as isize - r;
                    if j < 0 || j >= len as isize {
                        match edge {
                            Edge::Zero => continue,
                            Edge::Clamp => j = j.clamp(0, len as isize - 1),
                        }
                    }
                    acc += kw * src[((y * w + x) as isize + (j - at) * stride as isize) as usize];
                }
                out[y * w + x] = acc;
            }
        }
        out
    };
    pass(&pass(src, true), false)
}

/// A normalised Gaussian kernel of radius `ceil(3σ)` (a single 1 for `sigma <= 0`).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    k.into_iter().map(|v| v / sum).collect()
}

/// The median of a slice (sorted in place); `0` when empty.
pub fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The `q`-quantile (0–1, nearest rank) of a slice (sorted in place); `0` when empty.
pub fn percentile(values: &mut [f32], q: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    values[((values.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(percentile(&mut [5.0, 1.0, 4.0, 2.0, 3.0], 0.25), 2.0);
        assert_eq!(percentile(&mut [5.0, 1.0, 4.0, 2.0, 3.0], 1.0), 5.0);
    }

    #[test]
    fn blur_keeps_a_flat_image_and_spreads_an_impulse() {
        let mut img = Rgb { width: 9, height: 9, data: vec![[10.0; 3]; 81] };
        assert!(img.blur(1.0).data.iter().all(|p| (p[0] - 10.0).abs() < 1e-4));
        img.data[40] = [100.0; 3];
        let b = img.blur(1.0);
        let sum: f32 = b.data.iter().map(|p| p[0] - 10.0).sum();
        assert!((sum - 90.0).abs() < 1e-2, "blur keeps the impulse's mass: {sum}");
        assert!(b.at(4, 4)[0] < 100.0 && b.at(5, 4)[0] > 10.0);
    }

    #[test]
    fn zero_edges_lose_mass_and_clamped_edges_keep_it() {
        // σ = 1: the kernel reaches 3 px, so the centre of a 9×9 plane sees no edge; a corner
        // keeps the taps 0..=3 of each direction, g(0) + g(1) + g(2) + g(3) = 0.6995 (the
        // kernel normalised over −3..=3), squared: 0.4893.
        let plane = vec![1.0f32; 81];
        let clamped = blur_plane(&plane, 9, 9, 1.0, Edge::Clamp);
        assert!(clamped.iter().all(|v| (v - 1.0).abs() < 1e-5));
        let zero = blur_plane(&plane, 9, 9, 1.0, Edge::Zero);
        assert!((zero[40] - 1.0).abs() < 1e-5 && (zero[0] - 0.4893).abs() < 1e-3, "{zero:?}");
    }

    #[test]
    fn bilinear_sample_interpolates() {
        let g = Gray { width: 2, height: 1, data: vec![0.0, 10.0] };
        assert_eq!(g.sample(0.25, 0.0), Some(2.5));
        assert_eq!(g.sample(1.5, 0.0), None);
    }
}
