//! Rendering a [`Scene`] at time `t` into an sRGB frame.
//!
//! Shapes are exact signed-distance functions; pixels within a pixel's
//! half-diagonal of an edge are supersampled 4×4 (16 samples), the rest are
//! solid. Blending happens on sRGB values. The background grid and the night
//! sky's stars are anchored in the world, so camera motion shows; the mood
//! recolours the background only; the gloomy vignette is anchored to the frame.

use reel_media::Frame;

use crate::labels::{Mood, Shape, Style, Theme};
use crate::rng::hash3;
use crate::scene::{camera_at, world_to_screen, PlacedObject, Scene};

/// Spacing of the background grid (world units) and its line width.
const GRID_SPACING: f64 = 0.25;
const GRID_WIDTH: f64 = 1.0 / 64.0;
/// Intensity change of grid lines (added on dark themes, subtracted on light ones).
const GRID_DELTA: f64 = 10.0;
/// Outline width as a fraction of the canvas width.
pub const OUTLINE_WIDTH: f64 = 1.0 / 32.0;
/// Pixel style renders at 1/8 resolution.
const PIXEL_FACTOR: u32 = 8;
/// Star field: cells of this size hold a star with this probability.
/// (about 20 stars per canvas area).
const STAR_CELL: f64 = 0.1;
const STAR_CHANCE: f64 = 0.2;
const STAR_RADIUS: f64 = 0.006;
/// Least brightness of a star much smaller than its pixel (so it stays visible in pixel style).
const STAR_MIN_INTENSITY: f64 = 0.35;
const STAR_RGB: [f64; 3] = [245.0, 245.0, 245.0];
/// Darkening at the frame corners for the gloomy mood.
const VIGNETTE_STRENGTH: f64 = 0.6;
/// Supersampling grid per edge pixel.
const SUPERSAMPLE: usize = 4;

/// The time of frame `index` of `frames`: 0 for the first, 1 for the last.
pub fn frame_time(index: u32, frames: u32) -> f64 {
    if frames <= 1 {
        0.0
    } else {
        index as f64 / (frames - 1) as f64
    }
}

/// Signed distance (negative inside) from `p` (relative to the centre, y down) to a shape of radius `r`.
pub fn shape_sdf(shape: Shape, p: [f64; 2], r: f64) -> f64 {
    match shape {
        Shape::Circle => (p[0] * p[0] + p[1] * p[1]).sqrt() - r,
        Shape::Square => {
            let dx = p[0].abs() - r;
            let dy = p[1].abs() - r;
            (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt() + dx.max(dy).min(0.0)
        }
        Shape::Triangle => {
            // Equilateral, pointing up, centroid at the origin, circumradius r.
            let k = 3f64.sqrt();
            let half_side = r * k / 2.0;
            let (mut x, mut y) = (p[0].abs() - half_side, -p[1] + half_side / k);
            if x + k * y > 0.0 {
                (x, y) = ((x - k * y) / 2.0, (-k * x - y) / 2.0);
            }
            x -= x.clamp(-2.0 * half_side, 0.0);
            -(x * x + y * y).sqrt() * y.signum()
        }
    }
}

/// 1-D coverage of a pixel of width `w` centred on `x` by the nearest grid line.
fn line_coverage(x: f64, w: f64) -> f64 {
    let k = (x / GRID_SPACING).round() * GRID_SPACING;
    let (a0, a1) = (x - w / 2.0, x + w / 2.0);
    let (b0, b1) = (k - GRID_WIDTH / 2.0, k + GRID_WIDTH / 2.0);
    ((a1.min(b1) - a0.max(b0)).max(0.0) / w).min(1.0)
}

/// Coverage of the pixel at world point `p` (footprint `w` world units) by the star field.
fn star_coverage(seed: u64, p: [f64; 2], w: f64) -> f64 {
    let (cx, cy) = ((p[0] / STAR_CELL).floor() as i64, (p[1] / STAR_CELL).floor() as i64);
    // A star smaller than a pixel lights that pixel in proportion to its area (with a floor).
    let radius = STAR_RADIUS.max(0.5 * w);
    let intensity = (std::f64::consts::PI * STAR_RADIUS * STAR_RADIUS / (w * w)).clamp(STAR_MIN_INTENSITY, 1.0);
    let mut cover: f64 = 0.0;
    for i in cx - 1..=cx + 1 {
        for j in cy - 1..=cy + 1 {
            let h = hash3(seed, i, j);
            if (h & 0xffff) as f64 / 65536.0 >= STAR_CHANCE {
                continue;
            }
            let sx = (i as f64 + ((h >> 16) & 0xffff) as f64 / 65536.0) * STAR_CELL;
            let sy = (j as f64 + ((h >> 32) & 0xffff) as f64 / 65536.0) * STAR_CELL;
            let d = ((p[0] - sx).powi(2) + (p[1] - sy).powi(2)).sqrt();
            cover = cover.max((0.5 + (radius - d) / w).clamp(0.0, 1.0) * intensity);
        }
    }
    cover
}

/// Renders the scene on a grid of `cols × rows` pixels, each `px` canvas widths wide.
fn render_grid(scene: &Scene, t: f64, cols: u32, rows: u32, px: f64) -> Vec<[f64; 3]> {
    let labels = &scene.labels;
    let aspect = scene.aspect;
    let (centre, zoom) = camera_at(labels.camera, aspect, t);
    let theme = labels.theme.rgb().map(f64::from);
    let luma = 0.2126 * theme[0] + 0.7152 * theme[1] + 0.0722 * theme[2];
    let grid_delta = if luma < 128.0 { GRID_DELTA } else { -GRID_DELTA };
    let world_px = px / zoom;
    let half_diagonal = (0.25 + aspect * aspect / 4.0).sqrt();

    let mut out = Vec::with_capacity((cols * rows) as usize);
    for j in 0..rows {
        for i in 0..cols {
            let s = [(i as f64 + 0.5) * px, (j as f64 + 0.5) * px];
            let p = [(s[0] - 0.5) / zoom + centre[0], (s[1] - aspect / 2.0) / zoom + centre[1]];
            let (gx, gy) = (line_coverage(p[0], world_px), line_coverage(p[1], world_px));
            let grid = gx + gy - gx * gy;
            let mut rgb = theme.map(|c| c + grid_delta * grid);
            if labels.theme == Theme::Night {
                let star = star_coverage(scene.star_seed, p, world_px);
                rgb = [0, 1, 2].map(|k| rgb[k] * (1.0 - star) + STAR_RGB[k] * star);
            }
            rgb = labels.mood.apply(rgb);
            if labels.mood == Mood::Gloomy {
                let r = ((s[0] - 0.5).powi(2) + (s[1] - aspect / 2.0).powi(2)).sqrt() / half_diagonal;
                let v = 1.0 - VIGNETTE_STRENGTH * r * r;
                rgb = rgb.map(|c| c * v);
            }
            out.push(rgb);
        }
    }
    for object in &scene.objects {
        draw_object(&mut out, object, scene, t, cols, rows, px);
    }
    out
}

fn draw_object(out: &mut [[f64; 3]], object: &PlacedObject, scene: &Scene, t: f64, cols: u32, rows: u32, px: f64) {
    let (world_centre, r) = object.at(t);
    let (_, zoom) = camera_at(scene.labels.camera, scene.aspect, t);
    let screen = world_to_screen(scene.labels.camera, scene.aspect, t, world_centre);
    // Everything below in pixel units; pixel (i, j) has its centre at (i, j).
    let centre = [screen[0] / px - 0.5, screen[1] / px - 0.5];
    let radius = r * zoom / px;
    let outline = (scene.labels.style == Style::Outline).then_some(OUTLINE_WIDTH / px);
    let shape = object.labels.shape;
    let sdf = |x: f64, y: f64| {
        let d = shape_sdf(shape, [x - centre[0], y - centre[1]], radius);
        match outline {
            Some(w) => (d + w / 2.0).abs() - w / 2.0,
            None => d,
        }
    };
    let colour = object.labels.color.rgb().map(f64::from);
    let reach = PlacedObject::bounding_radius(shape, radius) + 2.0;
    let x0 = (centre[0] - reach).floor().max(0.0) as u32;
    let x1 = ((centre[0] + reach).ceil().max(0.0) as u32).min(cols.saturating_sub(1));
    let y0 = (centre[1] - reach).floor().max(0.0) as u32;
    let y1 = ((centre[1] + reach).ceil().max(0.0) as u32).min(rows.saturating_sub(1));
    const HALF_DIAGONAL: f64 = std::f64::consts::FRAC_1_SQRT_2;
    for j in y0..=y1 {
        for i in x0..=x1 {
            let (x, y) = (i as f64, j as f64);
            let d = sdf(x, y);
            let cover = if d <= -HALF_DIAGONAL {
                1.0
            } else if d >= HALF_DIAGONAL {
                0.0
            } else {
                let mut inside = 0;
                for sy in 0..SUPERSAMPLE {
                    for sx in 0..SUPERSAMPLE {
                        let ox = (sx as f64 + 0.5) / SUPERSAMPLE as f64 - 0.5;
                        let oy = (sy as f64 + 0.5) / SUPERSAMPLE as f64 - 0.5;
                        inside += (sdf(x + ox, y + oy) <= 0.0) as u32;
                    }
                }
                inside as f64 / (SUPERSAMPLE * SUPERSAMPLE) as f64
            };
            if cover > 0.0 {
                let p = &mut out[(j * cols + i) as usize];
                *p = [0, 1, 2].map(|k| p[k] * (1.0 - cover) + colour[k] * cover);
            }
        }
    }
}

fn to_u8(c: f64) -> u8 {
    c.round().clamp(0.0, 255.0) as u8
}

/// Renders the scene at time `t` ∈ [0, 1] as a `width × height` frame.
pub fn render_frame(scene: &Scene, width: u32, height: u32, t: f64) -> Frame {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    if scene.labels.style == Style::Pixel {
        let (cols, rows) = (width.div_ceil(PIXEL_FACTOR), height.div_ceil(PIXEL_FACTOR));
        let small = render_grid(scene, t, cols, rows, PIXEL_FACTOR as f64 / width as f64);
        for y in 0..height {
            for x in 0..width {
                let p = small[((y / PIXEL_FACTOR) * cols + x / PIXEL_FACTOR) as usize];
                data.extend(p.map(to_u8));
            }
        }
    } else {
        for p in render_grid(scene, t, width, height, 1.0 / width as f64) {
            data.extend(p.map(to_u8));
        }
    }
    Frame::from_rgb(width, height, data).expect("sized from width and height")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdfs_are_zero_on_the_boundary() {
        assert!(shape_sdf(Shape::Circle, [3.0, 4.0], 5.0).abs() < 1e-12);
        assert!(shape_sdf(Shape::Square, [2.0, 1.0], 2.0).abs() < 1e-12);
        assert!(shape_sdf(Shape::Square, [0.0, 0.0], 2.0) < 0.0);
        // Triangle: apex straight up (negative y) at the circumradius, base at r/2 below the centre.
        assert!(shape_sdf(Shape::Triangle, [0.0, -1.0], 1.0).abs() < 1e-9);
        assert!(shape_sdf(Shape::Triangle, [0.0, 0.5], 1.0).abs() < 1e-9);
        assert!(shape_sdf(Shape::Triangle, [0.0, 0.0], 1.0) < 0.0);
        assert!(shape_sdf(Shape::Triangle, [0.0, 0.9], 1.0) > 0.0, "below the base is outside");
    }

    #[test]
    fn frame_times_span_the_clip() {
        assert_eq!(frame_time(0, 17), 0.0);
        assert_eq!(frame_time(16, 17), 1.0);
        assert_eq!(frame_time(0, 1), 0.0);
    }
}
