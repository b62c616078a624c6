//! Reading a clip's scene back from its pixels (shapes-world.md, "Scoring a generated clip").
//!
//! Nothing here looks at captions or labels: [`analyze`] sees frames only and returns what it
//! finds, which [`crate::adherence`] then compares with what the prompt asked for.
//!
//! 1. **Background**: per frame, a colour `c` and a radial darkening `1 − k·r²` (the gloomy
//!    vignette) fitted to the border pixels; theme and mood are the nearest of the 12 renderable
//!    (theme, mood) backgrounds.
//! 2. **Objects**: pixels farther than [`OBJECT_THRESHOLD`] from the background model, minus
//!    star-like pixels on night skies (on the line from the background to white, less than 60% of the way),
//!    split into 8-connected blobs of at least [`MIN_AREA_FRACTION`] of the frame, linked over
//!    time into tracks by nearest centroid. A track seen in fewer than half the frames is noise.
//! 3. **Colour**: the palette colour whose mixing line with the background (pixel = α·colour +
//!    (1 − α)·background) explains the blob's pixels best; robust to blur, which only moves
//!    pixels along that line. Voted over frames by area.
//! 4. **Shape**: circle, square and triangle templates with the blob's area and centroid, drawn
//!    anti-aliased (and at 1/8 resolution for pixel art), blurred by σ ∈ {0, 0.7, 1.4, 2.2} px,
//!    fitted to the blob's soft mask (holes filled, for outlines); the least squared error
//!    summed over up to 8 frames wins.
//! 5. **Camera**: between consecutive frames, the horizontal shift (pan) or scale about the centre
//!    (zoom) that best maps the background (objects masked out) onto the next frame.
//! 6. **Motion**: centroid displacement and area ratio between the first and last quarter of the
//!    clip, in world coordinates (camera motion removed).
//! 7. **Style**: pixel art when strong edges sit on the 1/8 block grid; outline when objects
//!    have holes; flat otherwise.

use reel_data::render::shape_sdf;
use reel_data::{Camera, Color, Mood, Motion, Shape, Style, Theme};
use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::image::{blur_plane, distance, luma, median, percentile, Edge, Gray, Rgb};

/// Colour distance from the background above which a pixel belongs to an object.
pub const OBJECT_THRESHOLD: f32 = 40.0;
/// Least blob area, as a fraction of the frame (0.25%: 10 pixels at 64×64).
pub const MIN_AREA_FRACTION: f32 = 0.0025;
/// The background is a low percentile of the border rather than its median: stars only
/// brighten the sky, and pixel art lights up to a third of the cells near stars.
const BACKGROUND_PERCENTILE: f32 = 0.3;
/// Vignette strength of the gloomy mood (as rendered).
const GLOOMY_VIGNETTE: f32 = 0.6;
/// Pixel art renders at 1/8 resolution.
const PIXEL_FACTOR: usize = 8;
/// Template blurs tried when fitting shapes (pixels).
const SHAPE_BLURS: [f32; 4] = [0.0, 0.7, 1.4, 2.2];
/// Frames used for the shape fit, at most.
const SHAPE_FRAMES: usize = 8;
/// Hole share of a filled blob (largest over the frames) above which the object is drawn as an outline.
const OUTLINE_HOLES: f32 = 0.12;

/// The background of one frame: `centre · (1 − vignette · r²)`, r the distance from the
/// frame centre over the half-diagonal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Background {
    pub centre: [f32; 3],
    pub vignette: f32,
}

/// What the scorer read from one object's track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectReading {
    pub color: Color,
    pub shape: Shape,
    pub motion: Motion,
    /// Frames the object was found in.
    pub frames: usize,
    /// Mean colour of the object's most distinct pixels.
    pub mean_rgb: [f32; 3],
    /// World displacement between the first and last quarter (canvas widths; y down).
    pub displacement: [f32; 2],
    /// World area of the last quarter over the first.
    pub area_ratio: f32,
    /// Template fit error per shape (circle, square, triangle); lower fits better.
    pub shape_errors: [f32; 3],
    /// Share of the filled blob that is hole (outline drawings have large holes).
    pub holes: f32,
}

/// Everything the scorer read from a clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub objects: Vec<ObjectReading>,
    pub theme: Theme,
    pub mood: Mood,
    pub camera: Camera,
    pub style: Style,
    /// Median background of the clip.
    pub background: Background,
    /// Content shift over the clip (canvas widths; positive: the scene slid right).
    pub pan: f32,
    /// Content scale over the clip (above 1: zooming in).
    pub zoom: f32,
}

/// Reads a clip. An empty clip reads as a black, static, flat scene with no objects.
pub fn analyze(frames: &[Frame]) -> Reading {
    let images: Vec<Rgb> = frames.iter().map(Rgb::from_frame).collect();
    let backgrounds: Vec<Background> = images.iter().map(estimate_background).collect();
    let background = median_background(&backgrounds);
    let (theme, mood) = classify_background(&background);
    let width = images.first().map_or(64, |i| i.width);

    let detections: Vec<Vec<Blob>> = images.iter().zip(&backgrounds).map(|(img, bg)| find_blobs(img, bg, theme == Theme::Night)).collect();
    let pixel_art = is_pixel_art(&images);
    let camera_path = estimate_camera(&images, &backgrounds, &detections);
    let (pan, zoom) = (camera_path.last().map_or(0.0, |c| c.shift) / width as f32, camera_path.last().map_or(1.0, |c| c.scale));
    let camera = classify_camera(pan, zoom);

    let tracks = link_tracks(detections, width as f32);
    let min_frames = images.len().div_ceil(2).max(1);
    let mut objects = Vec::new();
    for track in tracks.iter().filter(|t| t.iter().filter(|b| b.is_some()).count() >= min_frames) {
        objects.push(read_object(track, &images, &backgrounds, &camera_path, pixel_art));
    }
    objects.sort_by_key(|o| std::cmp::Reverse(o.frames));
    let style = if pixel_art {
        Style::Pixel
    } else if objects.iter().any(|o| o.holes > OUTLINE_HOLES) {
        Style::Outline
    } else {
        Style::Flat
    };
    Reading { objects, theme, mood, camera, style, background, pan, zoom }
}

// ---------------------------------------------------------------------------------------------
// Background

/// r² at pixel (x, y), normalised as the renderer's vignette: 1 at the corners.
fn radius2(x: usize, y: usize, w: usize, h: usize) -> f32 {
    let (w, h) = (w as f32, h as f32);
    let aspect = h / w;
    let (sx, sy) = ((x as f32 + 0.5) / w - 0.5, (y as f32 + 0.5) / w - aspect / 2.0);
    (sx * sx + sy * sy) / (0.25 + aspect * aspect / 4.0)
}

impl Background {
    pub fn at(&self, x: usize, y: usize, w: usize, h: usize) -> [f32; 3] {
        let v = 1.0 - self.vignette * radius2(x, y, w, h);
        self.centre.map(|c| c * v)
    }
}

/// Fits `centre · (1 − k·r²)` to a frame's border ring (robustly: medians in r² bins).
pub fn estimate_background(img: &Rgb) -> Background {
    let (w, h) = (img.width, img.height);
    let ring = (w.min(h) / 32).max(1);
    let mut border = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if x < ring || y < ring || x >= w - ring || y >= h - ring {
                border.push((radius2(x, y, w, h), img.at(x, y)));
            }
        }
    }
    // Luma medians in r² bins, then a weighted line L = a + b·r².
    const BINS: usize = 6;
    let (lo, hi) = border.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &(r, _)| (lo.min(r), hi.max(r)));
    let mut bins: Vec<Vec<f32>> = vec![Vec::new(); BINS];
    for &(r, p) in &border {
        let i = (((r - lo) / (hi - lo + 1e-6)) * BINS as f32) as usize;
        bins[i.min(BINS - 1)].push(luma(p));
    }
    let mut points = Vec::new();
    for (i, bin) in bins.iter_mut().enumerate() {
        if bin.len() >= 4 {
            let r = lo + (i as f32 + 0.5) / BINS as f32 * (hi - lo);
            points.push((r, percentile(bin, BACKGROUND_PERCENTILE), bin.len() as f32));
        }
    }
    let vignette = if points.len() >= 2 {
        let sw: f32 = points.iter().map(|p| p.2).sum();
        let mx = points.iter().map(|p| p.0 * p.2).sum::<f32>() / sw;
        let my = points.iter().map(|p| p.1 * p.2).sum::<f32>() / sw;
        let sxx: f32 = points.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
        let sxy: f32 = points.iter().map(|p| p.2 * (p.0 - mx) * (p.1 - my)).sum();
        let slope = if sxx > 1e-9 { sxy / sxx } else { 0.0 };
        let intercept = my - slope * mx;
        if intercept > 1.0 {
            (-slope / intercept).clamp(0.0, 0.9)
        } else {
            0.0
        }
    } else {
        0.0
    };
    let centre = [0, 1, 2].map(|c| {
        let mut values: Vec<f32> = border.iter().map(|&(r, p)| p[c] / (1.0 - vignette * r)).collect();
        percentile(&mut values, BACKGROUND_PERCENTILE)
    });
    Background { centre, vignette }
}

fn median_background(backgrounds: &[Background]) -> Background {
    let pick = |f: &dyn Fn(&Background) -> f32| {
        let mut v: Vec<f32> = backgrounds.iter().map(f).collect();
        median(&mut v)
    };
    Background { centre: [0, 1, 2].map(|c| pick(&|b| b.centre[c])), vignette: pick(&|b| b.vignette) }
}

/// The background colour at the frame centre that `theme` under `mood` renders.
pub fn background_colour(theme: Theme, mood: Mood) -> [f32; 3] {
    mood.apply(theme.rgb().map(f64::from)).map(|c| c as f32)
}

/// The nearest renderable (theme, mood) background.
pub fn classify_background(bg: &Background) -> (Theme, Mood) {
    let mut best = (Theme::Black, Mood::Neutral, f32::MAX);
    for &theme in Theme::ALL {
        for &mood in Mood::ALL {
            let k = if mood == Mood::Gloomy { GLOOMY_VIGNETTE } else { 0.0 };
            let d = distance(bg.centre, background_colour(theme, mood)) + 60.0 * (bg.vignette - k).abs();
            if d < best.2 {
                best = (theme, mood, d);
            }
        }
    }
    (best.0, best.1)
}

// ---------------------------------------------------------------------------------------------
// Objects

/// One connected group of object pixels in one frame.
#[derive(Clone, Debug)]
struct Blob {
    /// Pixel indices (y·w + x).
    pixels: Vec<usize>,
    centroid: [f32; 2],
    /// [x0, y0, x1, y1], inclusive.
    bbox: [usize; 4],
    color: Color,
    /// Mean colour of the blob's most distinct quarter.
    core: [f32; 3],
}

/// Object blobs of one frame, largest first.
fn find_blobs(img: &Rgb, bg: &Background, night: bool) -> Vec<Blob> {
    let (w, h) = (img.width, img.height);
    let mut mask = vec![false; w * h];
    let mut diff = vec![0.0f32; w * h];
    let white = [245.0f32; 3];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let b = bg.at(x, y, w, h);
            let p = img.data[i];
            diff[i] = distance(p, b);
            if diff[i] <= OBJECT_THRESHOLD {
                continue;
            }
            if night {
                // A star: on the way from the sky to white, and not far along it.
                let wv = [0, 1, 2].map(|c| white[c] - b[c]);
                let v = [0, 1, 2].map(|c| p[c] - b[c]);
                let ww: f32 = wv.iter().map(|a| a * a).sum();
                let s = (0..3).map(|c| v[c] * wv[c]).sum::<f32>() / ww.max(1.0);
                let residual = distance(v, wv.map(|a| a * s));
                if s < 0.6 && residual < 25.0 {
                    continue;
                }
            }
            mask[i] = true;
        }
    }
    let min_area = ((MIN_AREA_FRACTION * (w * h) as f32).ceil() as usize).max(4);
    let mut seen = vec![false; w * h];
    let mut blobs = Vec::new();
    for start in 0..w * h {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut pixels = vec![start];
        seen[start] = true;
        let mut head = 0;
        while head < pixels.len() {
            let i = pixels[head];
            head += 1;
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        pixels.push(j);
                    }
                }
            }
        }
        if pixels.len() < min_area {
            continue;
        }
        let n = pixels.len() as f32;
        let centroid = [pixels.iter().map(|&i| (i % w) as f32).sum::<f32>() / n, pixels.iter().map(|&i| (i / w) as f32).sum::<f32>() / n];
        let bbox = pixels.iter().fold([usize::MAX, usize::MAX, 0, 0], |b, &i| [b[0].min(i % w), b[1].min(i / w), b[2].max(i % w), b[3].max(i / w)]);
        let color = classify_colour(img, bg, &pixels, &diff);
        let mut by_diff = pixels.clone();
        by_diff.sort_by(|&a, &b| diff[b].total_cmp(&diff[a]));
        let top = &by_diff[..by_diff.len().div_ceil(4)];
        let core = [0, 1, 2].map(|c| top.iter().map(|&i| img.data[i][c]).sum::<f32>() / top.len() as f32);
        blobs.push(Blob { pixels, centroid, bbox, color, core });
    }
    blobs.sort_by_key(|b| std::cmp::Reverse(b.pixels.len()));
    blobs
}

/// Distance from `p` to the segment from `a` to `b` (the projection allowed 20% past `b`).
fn segment_distance(p: [f32; 3], a: [f32; 3], b: [f32; 3]) -> f32 {
    let ab = [0, 1, 2].map(|c| b[c] - a[c]);
    let ap = [0, 1, 2].map(|c| p[c] - a[c]);
    let ll: f32 = ab.iter().map(|v| v * v).sum();
    let t = ((0..3).map(|c| ab[c] * ap[c]).sum::<f32>() / ll.max(1e-6)).clamp(0.0, 1.2);
    distance(p, [0, 1, 2].map(|c| a[c] + t * ab[c]))
}

/// The palette colour whose mixing line with the background fits the blob best, each pixel
/// weighted by its distance from the background.
fn classify_colour(img: &Rgb, bg: &Background, pixels: &[usize], diff: &[f32]) -> Color {
    let (w, h) = (img.width, img.height);
    let mut best = (Color::White, f32::MAX);
    for &colour in Color::ALL {
        let target = colour.rgb().map(f32::from);
        let (mut err, mut weight) = (0.0f32, 0.0f32);
        for &i in pixels {
            let b = bg.at(i % w, i / w, w, h);
            err += diff[i] * segment_distance(img.data[i], b, target).powi(2);
            weight += diff[i];
        }
        let err = err / weight.max(1e-6);
        if err < best.1 {
            best = (colour, err);
        }
    }
    best.0
}

/// Links blobs over frames: each blob joins the track whose latest blob (up to two frames
/// back) is nearest, within a fifth of the frame width.
fn link_tracks(detections: Vec<Vec<Blob>>, width: f32) -> Vec<Vec<Option<Blob>>> {
    let n = detections.len();
    let mut tracks: Vec<Vec<Option<Blob>>> = Vec::new();
    for (t, blobs) in detections.into_iter().enumerate() {
        let mut taken = vec![false; tracks.len()];
        for blob in blobs {
            let mut best: Option<(usize, f32)> = None;
            for (k, track) in tracks.iter().enumerate() {
                if taken[k] {
                    continue;
                }
                let last = (t.saturating_sub(2)..t).rev().find_map(|s| track[s].as_ref());
                if let Some(last) = last {
                    let d = ((last.centroid[0] - blob.centroid[0]).powi(2) + (last.centroid[1] - blob.centroid[1]).powi(2)).sqrt();
                    if d <= 0.2 * width && best.is_none_or(|(_, bd)| d < bd) {
                        best = Some((k, d));
                    }
                }
            }
            match best {
                Some((k, _)) => {
                    tracks[k][t] = Some(blob);
                    taken[k] = true;
                }
                None => {
                    let mut track = vec![None; n];
                    track[t] = Some(blob);
                    tracks.push(track);
                    taken.push(true);
                }
            }
        }
    }
    tracks
}

fn read_object(track: &[Option<Blob>], images: &[Rgb], backgrounds: &[Background], camera: &[CameraPose], pixel_art: bool) -> ObjectReading {
    let present: Vec<usize> = (0..track.len()).filter(|&t| track[t].is_some()).collect();
    // Colour: area-weighted vote.
    let mut votes = [0usize; 8];
    for &t in &present {
        let b = track[t].as_ref().expect("present");
        votes[b.color.index()] += b.pixels.len();
    }
    let color = Color::ALL[(0..8).max_by_key(|&i| votes[i]).expect("eight colours")];
    let weight: f32 = present.iter().map(|&t| track[t].as_ref().expect("present").pixels.len() as f32).sum();
    let mean_rgb = [0, 1, 2].map(|c| present.iter().map(|&t| {
        let b = track[t].as_ref().expect("present");
        b.core[c] * b.pixels.len() as f32
    }).sum::<f32>() / weight.max(1.0));

    // Shape: templates fitted on up to SHAPE_FRAMES frames spread over the track.
    let step = present.len().div_ceil(SHAPE_FRAMES).max(1);
    let mut shape_errors = [0.0f32; 3];
    let mut holes = Vec::new();
    let mut measures = vec![None; track.len()];
    for (k, &t) in present.iter().enumerate() {
        let blob = track[t].as_ref().expect("present");
        let soft = soft_mask(blob, &images[t], &backgrounds[t], color);
        holes.push(soft.holes);
        measures[t] = Some((soft.mass, soft.centroid));
        if k % step == 0 {
            let errors = fit_shapes(&soft, images[t].width, pixel_art);
            for s in 0..3 {
                shape_errors[s] += errors[s];
            }
        }
    }
    let fits = present.len().div_ceil(step) as f32;
    shape_errors = shape_errors.map(|e| e / fits);
    let shape = Shape::ALL[(0..3).min_by(|&a, &b| shape_errors[a].total_cmp(&shape_errors[b])).expect("three shapes")];
    let holes = holes.iter().copied().fold(0.0, f32::max);

    // Motion in world coordinates: undo the camera, then compare the first and last quarter.
    let width = images[0].width as f32;
    let centre = [(images[0].width as f32 - 1.0) / 2.0, (images[0].height as f32 - 1.0) / 2.0];
    let world: Vec<Option<([f32; 2], f32)>> = measures
        .iter()
        .enumerate()
        .map(|(t, a)| {
            a.map(|(mass, c)| {
                let pose = camera[t];
                let q = [centre[0] + (c[0] - pose.shift - centre[0]) / pose.scale, centre[1] + (c[1] - centre[1]) / pose.scale];
                (q, mass / (pose.scale * pose.scale))
            })
        })
        .collect();
    let n = track.len();
    let quarter = (n / 4).max(1);
    let mean_over = |range: std::ops::Range<usize>| {
        let items: Vec<_> = range.filter_map(|t| world[t]).collect();
        if items.is_empty() {
            return None;
        }
        let k = items.len() as f32;
        Some(([items.iter().map(|i| i.0[0]).sum::<f32>() / k, items.iter().map(|i| i.0[1]).sum::<f32>() / k], items.iter().map(|i| i.1).sum::<f32>() / k))
    };
    let (first, last) = (mean_over(0..quarter), mean_over(n - quarter..n));
    let (displacement, area_ratio) = match (first, last) {
        (Some(a), Some(b)) => ([(b.0[0] - a.0[0]) / width, (b.0[1] - a.0[1]) / width], b.1 / a.1.max(1e-6)),
        _ => ([0.0, 0.0], 1.0),
    };
    let motion = classify_motion(displacement, area_ratio);
    ObjectReading { color, shape, motion, frames: present.len(), mean_rgb, displacement, area_ratio, shape_errors, holes }
}

/// Least displacement (canvas widths between quarter means) read as a translation; the
/// slowest translation in Shapes World moves 0.15 between the quarter means.
const MOVE_THRESHOLD: f32 = 0.06;
/// Least |ln area ratio| read as growing or shrinking; the slowest growth gives ln 1.48 ≈ 0.39.
const SCALE_THRESHOLD: f32 = 0.16;

/// Motion from the world displacement (canvas widths, y down) and area ratio.
pub fn classify_motion(displacement: [f32; 2], area_ratio: f32) -> Motion {
    let [dx, dy] = displacement;
    let moved = (dx * dx + dy * dy).sqrt() / MOVE_THRESHOLD;
    let scaled = area_ratio.max(1e-6).ln().abs() / SCALE_THRESHOLD;
    if moved < 1.0 && scaled < 1.0 {
        Motion::Still
    } else if scaled > moved {
        if area_ratio > 1.0 {
            Motion::Grow
        } else {
            Motion::Shrink
        }
    } else if dx.abs() >= dy.abs() {
        if dx > 0.0 {
            Motion::Right
        } else {
            Motion::Left
        }
    } else if dy > 0.0 {
        Motion::Down
    } else {
        Motion::Up
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// A blob's soft coverage (α) over its neighbourhood, holes filled.
struct SoftMask {
    /// Region [x0, y0] and size.
    origin: [usize; 2],
    size: [usize; 2],
    alpha: Vec<f32>,
    mass: f32,
    centroid: [f32; 2],
    holes: f32,
}

fn soft_mask(blob: &Blob, img: &Rgb, bg: &Background, color: Color) -> SoftMask {
    let (w, h) = (img.width, img.height);
    let margin = 4usize;
    let x0 = blob.bbox[0].saturating_sub(margin);
    let y0 = blob.bbox[1].saturating_sub(margin);
    let x1 = (blob.bbox[2] + margin).min(w - 1);
    let y1 = (blob.bbox[3] + margin).min(h - 1);
    let (rw, rh) = (x1 - x0 + 1, y1 - y0 + 1);
    // Blob membership, dilated by 2 px, bounds where α may be non-zero.
    let mut member = vec![false; rw * rh];
    for &i in &blob.pixels {
        member[(i / w - y0) * rw + (i % w - x0)] = true;
    }
    let mut near = member.clone();
    for _ in 0..2 {
        let prev = near.clone();
        for y in 0..rh {
            for x in 0..rw {
                if prev[y * rw + x] {
                    continue;
                }
                let any = [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)].iter().any(|&(dx, dy)| {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    nx >= 0 && ny >= 0 && nx < rw as isize && ny < rh as isize && prev[ny as usize * rw + nx as usize]
                });
                near[y * rw + x] = any;
            }
        }
    }
    // Holes: non-member pixels not 4-connected to the region's edge.
    let mut outside = vec![false; rw * rh];
    let mut stack: Vec<usize> = (0..rw * rh).filter(|&i| (i % rw == 0 || i / rw == 0 || i % rw == rw - 1 || i / rw == rh - 1) && !member[i]).collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % rw, i / rw);
        let mut push = |j: usize| {
            if !member[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            push(i - 1);
        }
        if x + 1 < rw {
            push(i + 1);
        }
        if y > 0 {
            push(i - rw);
        }
        if y + 1 < rh {
            push(i + rw);
        }
    }
    let target = color.rgb().map(f32::from);
    let mut alpha = vec![0.0f32; rw * rh];
    let mut hole_count = 0usize;
    for y in 0..rh {
        for x in 0..rw {
            let k = y * rw + x;
            if !member[k] && !outside[k] {
                alpha[k] = 1.0;
                hole_count += 1;
                continue;
            }
            if !near[k] {
                continue;
            }
            let (px, py) = (x + x0, y + y0);
            let b = bg.at(px, py, w, h);
            let p = img.at(px, py);
            let d = [0, 1, 2].map(|c| target[c] - b[c]);
            let v = [0, 1, 2].map(|c| p[c] - b[c]);
            let dd: f32 = d.iter().map(|a| a * a).sum();
            alpha[k] = ((0..3).map(|c| v[c] * d[c]).sum::<f32>() / dd.max(1.0)).clamp(0.0, 1.0);
        }
    }
    let mass: f32 = alpha.iter().sum();
    let cx = alpha.iter().enumerate().map(|(k, a)| a * (k % rw + x0) as f32).sum::<f32>() / mass.max(1e-6);
    let cy = alpha.iter().enumerate().map(|(k, a)| a * (k / rw + y0) as f32).sum::<f32>() / mass.max(1e-6);
    let holes = hole_count as f32 / (hole_count + blob.pixels.len()).max(1) as f32;
    SoftMask { origin: [x0, y0], size: [rw, rh], alpha, mass, centroid: [cx, cy], holes }
}

/// Area of a shape of "radius" r (circle radius, square half-side, triangle circumradius).
fn shape_area(shape: Shape, r: f32) -> f32 {
    match shape {
        Shape::Circle => std::f32::consts::PI * r * r,
        Shape::Square => 4.0 * r * r,
        Shape::Triangle => 3.0 * 3f32.sqrt() / 4.0 * r * r,
    }
}

/// Squared template error per shape (circle, square, triangle), normalised by the mask's mass.
fn fit_shapes(mask: &SoftMask, frame_width: usize, pixel_art: bool) -> [f32; 3] {
    let [rw, rh] = mask.size;
    let [x0, y0] = mask.origin;
    let mass = mask.mass.max(1.0);
    let block = (frame_width / PIXEL_FACTOR).max(1);
    Shape::ALL
        .iter()
        .map(|&shape| {
            let r = (mass / shape_area(shape, 1.0)).sqrt() as f64;
            let c = [mask.centroid[0] as f64, mask.centroid[1] as f64];
            let inside = |x: f64, y: f64| (shape_sdf(shape, [x - c[0], y - c[1]], r) <= 0.0) as u32 as f32;
            let coverage: Vec<f32> = if pixel_art {
                // Coverage of each 1/8-resolution cell, sampled at its pixel centres.
                let mut cells = std::collections::HashMap::new();
                (0..rw * rh)
                    .map(|k| {
                        let (bx, by) = ((k % rw + x0) / block, (k / rw + y0) / block);
                        *cells.entry((bx, by)).or_insert_with(|| {
                            let mut sum = 0.0;
                            for j in 0..block {
                                for i in 0..block {
                                    sum += inside((bx * block + i) as f64, (by * block + j) as f64);
                                }
                            }
                            sum / (block * block) as f32
                        })
                    })
                    .collect()
            } else {
                (0..rw * rh)
                    .map(|k| {
                        let (px, py) = ((k % rw + x0) as f64, (k / rw + y0) as f64);
                        let mut sum = 0.0;
                        for sy in 0..4 {
                            for sx in 0..4 {
                                sum += inside(px + (sx as f64 + 0.5) / 4.0 - 0.5, py + (sy as f64 + 0.5) / 4.0 - 0.5);
                            }
                        }
                        sum / 16.0
                    })
                    .collect()
            };
            SHAPE_BLURS
                .iter()
                .map(|&sigma| {
                    let t = blur_plane(&coverage, rw, rh, sigma, Edge::Zero);
                    t.iter().zip(&mask.alpha).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / mass
                })
                .fold(f32::MAX, f32::min)
        })
        .collect::<Vec<f32>>()
        .try_into()
        .expect("three shapes")
}

// ---------------------------------------------------------------------------------------------
// Style

/// Pixel art: most strong edges (colour steps above 40) lie on the 1/8-resolution block grid.
pub fn is_pixel_art(images: &[Rgb]) -> bool {
    let Some(first) = images.first() else { return false };
    let block = first.width / PIXEL_FACTOR;
    if block < 2 || first.width % PIXEL_FACTOR != 0 {
        return false;
    }
    let (mut on_grid, mut total) = (0usize, 0usize);
    for img in images {
        for y in 0..img.height {
            for x in 0..img.width {
                if x + 1 < img.width && distance(img.at(x + 1, y), img.at(x, y)) > 40.0 {
                    total += 1;
                    on_grid += ((x + 1) % block == 0) as usize;
                }
                if y + 1 < img.height && distance(img.at(x, y + 1), img.at(x, y)) > 40.0 {
                    total += 1;
                    on_grid += ((y + 1) % block == 0) as usize;
                }
            }
        }
    }
    total >= 8 && on_grid as f32 > 0.6 * total as f32
}

// ---------------------------------------------------------------------------------------------
// Camera

/// The camera relative to the first frame: content shifted right by `shift` pixels, then
/// scaled by `scale` about the frame centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraPose {
    pub shift: f32,
    pub scale: f32,
}

/// Camera poses for every frame (the first is the identity), assuming a steady camera: the
/// per-frame shift and log-scale are the medians of estimates between frames `stride` apart
/// (a quarter of the clip, so slow zooms move the grid by whole pixels, at most 4 frames so
/// pans stay inside half the grid's period).
fn estimate_camera(images: &[Rgb], backgrounds: &[Background], detections: &[Vec<Blob>]) -> Vec<CameraPose> {
    let n = images.len();
    let identity = vec![CameraPose { shift: 0.0, scale: 1.0 }; n];
    if n < 2 {
        return identity;
    }
    let stride = (n / 4).clamp(1, 4);
    let masks: Vec<Vec<bool>> = images.iter().zip(detections).map(|(img, blobs)| object_mask(img.width, img.height, blobs, 3)).collect();
    let grays: Vec<Gray> = images.iter().zip(backgrounds).map(|(img, bg)| flattened(img, bg)).collect();
    let (mut shifts, mut scales) = (Vec::new(), Vec::new());
    for t in 0..n - stride {
        let (shift, scale) = frame_motion(&grays[t], &grays[t + stride], &masks[t], &masks[t + stride], stride as f32);
        shifts.push(shift / stride as f32);
        scales.push(scale.ln() / stride as f32);
    }
    let (shift, log_scale) = (median(&mut shifts), median(&mut scales));
    (0..n).map(|t| CameraPose { shift: shift * t as f32, scale: (log_scale * t as f32).exp() }).collect()
}

/// Luma relative to the background model (in % of it), lightly blurred, so that a frame-anchored vignette does
/// not pull the estimate towards a still camera.
fn flattened(img: &Rgb, bg: &Background) -> Gray {
    let (w, h) = (img.width, img.height);
    let data: Vec<f32> = (0..w * h).map(|i| 100.0 * luma(img.data[i]) / luma(bg.at(i % w, i / w, w, h)).max(8.0)).collect();
    // A light blur keeps the one-pixel grid lines and averages away sensor-like noise.
    Gray { width: w, height: h, data: blur_plane(&data, w, h, 0.8, Edge::Clamp) }
}

fn object_mask(w: usize, h: usize, blobs: &[Blob], grow: usize) -> Vec<bool> {
    let mut mask = vec![false; w * h];
    for blob in blobs {
        let x0 = blob.bbox[0].saturating_sub(grow);
        let y0 = blob.bbox[1].saturating_sub(grow);
        let x1 = (blob.bbox[2] + grow).min(w - 1);
        let y1 = (blob.bbox[3] + grow).min(h - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                mask[y * w + x] = true;
            }
        }
    }
    mask
}

/// The pan shift (pixels) or zoom scale that best maps frame `a` onto frame `b`, `frames`
/// apart; the identity unless a candidate explains the change clearly better.
fn frame_motion(a: &Gray, b: &Gray, mask_a: &[bool], mask_b: &[bool], frames: f32) -> (f32, f32) {
    let (w, h) = (a.width, a.height);
    let centre = [(w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0];
    let error = |shift: f32, scale: f32| -> f32 {
        let (mut sum, mut n) = (0.0f32, 0usize);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if mask_b[i] {
                    continue;
                }
                let sx = centre[0] + (x as f32 - centre[0]) / scale - shift;
                let sy = centre[1] + (y as f32 - centre[1]) / scale;
                let (ix, iy) = (sx.round() as isize, sy.round() as isize);
                if ix < 0 || iy < 0 || ix >= w as isize || iy >= h as isize || mask_a[iy as usize * w + ix as usize] {
                    continue;
                }
                if let Some(v) = a.sample(sx, sy) {
                    sum += (b.data[i] - v).powi(2);
                    n += 1;
                }
            }
        }
        if n < w * h / 8 {
            f32::MAX
        } else {
            sum / n as f32
        }
    };
    let identity = error(0.0, 1.0);
    let mut best = (0.0f32, 1.0f32, identity);
    // Shifts up to 2 px a frame (a Shapes World pan moves under 1.2 px a frame at 64 px) and
    // at most 6 px in all (the grid repeats every quarter width); zooms up to 4% a frame.
    let max_shift = (2.0 * frames).min(6.0 * w as f32 / 64.0);
    let steps = (max_shift / 0.25).round() as i32;
    for k in -steps..=steps {
        let shift = k as f32 * 0.25;
        let e = error(shift, 1.0);
        if e < best.2 {
            best = (shift, 1.0, e);
        }
    }
    let max_log = (0.04 * frames).min(0.2);
    for k in -20..=20 {
        let scale = (max_log * k as f32 / 20.0).exp();
        let e = error(0.0, scale);
        if e < best.2 {
            best = (0.0, scale, e);
        }
    }
    if best.2 < 0.97 * identity && identity - best.2 > 0.01 {
        (best.0, best.1)
    } else {
        (0.0, 1.0)
    }
}

/// Least content shift over the clip (canvas widths) read as a pan; a Shapes World pan moves
/// the scene 0.3.
const PAN_THRESHOLD: f32 = 0.1;
/// Least |ln zoom| over the clip read as a zoom; a Shapes World zoom scales by 1.4 (ln ≈ 0.34).
const ZOOM_THRESHOLD: f32 = 0.12;

/// Camera from the content shift (canvas widths) and scale over the clip.
pub fn classify_camera(pan: f32, zoom: f32) -> Camera {
    let zoomed = zoom.max(1e-6).ln();
    if zoomed.abs() >= ZOOM_THRESHOLD && zoomed.abs() / ZOOM_THRESHOLD >= pan.abs() / PAN_THRESHOLD {
        if zoomed > 0.0 {
            Camera::ZoomIn
        } else {
            Camera::ZoomOut
        }
    } else if pan.abs() >= PAN_THRESHOLD {
        // The scene sliding right means the view moved left.
        if pan > 0.0 {
            Camera::PanLeft
        } else {
            Camera::PanRight
        }
    } else {
        Camera::Static
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_thresholds() {
        assert_eq!(classify_motion([0.0, 0.0], 1.0), Motion::Still);
        assert_eq!(classify_motion([0.05, 0.0], 1.1), Motion::Still);
        assert_eq!(classify_motion([0.15, 0.01], 1.0), Motion::Right);
        assert_eq!(classify_motion([-0.15, 0.01], 1.0), Motion::Left);
        assert_eq!(classify_motion([0.0, -0.2], 1.0), Motion::Up);
        assert_eq!(classify_motion([0.01, 0.2], 1.0), Motion::Down);
        // ln 1.48 / 0.16 = 2.45 beats 0.03 / 0.06 = 0.5.
        assert_eq!(classify_motion([0.03, 0.0], 1.48), Motion::Grow);
        assert_eq!(classify_motion([0.0, 0.0], 0.5), Motion::Shrink);
    }

    #[test]
    fn camera_thresholds() {
        assert_eq!(classify_camera(0.0, 1.0), Camera::Static);
        assert_eq!(classify_camera(0.3, 1.0), Camera::PanLeft);
        assert_eq!(classify_camera(-0.3, 1.0), Camera::PanRight);
        assert_eq!(classify_camera(0.0, 1.4), Camera::ZoomIn);
        assert_eq!(classify_camera(0.02, 1.0 / 1.4), Camera::ZoomOut);
        assert_eq!(classify_camera(0.05, 1.05), Camera::Static);
    }

    #[test]
    fn background_fit_recovers_a_vignette() {
        // centre (100, 80, 60) darkened by 1 − 0.6·r², as the gloomy mood draws it.
        let (w, h) = (64, 64);
        let bg = Background { centre: [100.0, 80.0, 60.0], vignette: 0.6 };
        let img = Rgb { width: w, height: h, data: (0..w * h).map(|i| bg.at(i % w, i / w, w, h)).collect() };
        let fit = estimate_background(&img);
        assert!((fit.vignette - 0.6).abs() < 0.02, "{fit:?}");
        assert!(distance(fit.centre, bg.centre) < 2.0, "{fit:?}");
        // A corner is 0.4 of the centre.
        assert!((bg.at(0, 0, w, h)[0] - 100.0 * (1.0 - 0.6 * radius2(0, 0, w, h))).abs() < 1e-4);
        assert!(radius2(0, 0, w, h) > 0.95 && radius2(31, 31, w, h) < 0.001);
        assert_eq!(classify_background(&Background { centre: [100.0, 90.0, 70.0], vignette: 0.6 }), (Theme::Sand, Mood::Gloomy));
        assert_eq!(classify_background(&Background { centre: [110.0, 110.0, 110.0], vignette: 0.0 }), (Theme::Gray, Mood::Neutral));
    }

    #[test]
    fn template_areas() {
        assert!((shape_area(Shape::Circle, 2.0) - 12.566).abs() < 1e-3);
        assert_eq!(shape_area(Shape::Square, 2.0), 16.0);
        assert!((shape_area(Shape::Triangle, 2.0) - 5.196).abs() < 1e-3);
    }
}
