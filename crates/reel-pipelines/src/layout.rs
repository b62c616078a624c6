//! A planner's plan made concrete: each object's path drawn (seeded) and painted as a clip
//! on the background, which generation then noises part-way and denoises (SDEdit from a
//! layout; docs/planner.md). Each object is painted as its planned silhouette, scaled to its
//! planned size, or as a disc for a planner without silhouettes (what it looks like is then
//! left to the video model).

use candle_core::{Device, Result, Tensor};
use reel_models::planner::{Plan, SILHOUETTE_EXTENT};
use reel_schedulers::noise;

/// Noise stream of the start places drawn from a plan.
pub const LAYOUT_STREAM: u64 = 0x6c61_796f_7574;
/// Draws of the start places tried to keep two objects' paths apart.
const TRIES: u64 = 32;

/// One object's straight path: centre and equal-area radius at the start and at the end
/// (canvas widths from the top left), its colour (RGB in [0, 1]) and its planned silhouette
/// (square, row by row; see [`reel_models::planner::ObjectPlan::silhouette`]), if any.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ObjectPath {
    pub rgb: [f32; 3],
    pub start: [f32; 2],
    pub end: [f32; 2],
    pub radius: [f32; 2],
    #[serde(skip)]
    pub silhouette: Option<Vec<f32>>,
}

impl ObjectPath {
    /// Centre and radius at time `t` ∈ [0, 1].
    pub fn at(&self, t: f32) -> ([f32; 2], f32) {
        let lerp = |a: f32, b: f32| a + (b - a) * t;
        ([lerp(self.start[0], self.end[0]), lerp(self.start[1], self.end[1])], lerp(self.radius[0], self.radius[1]))
    }
}

/// What a clip shows, frame by frame.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Layout {
    pub background: [f32; 3],
    pub objects: Vec<ObjectPath>,
}

/// Where a start coordinate may lie so that a disc of radius `r0` there, and of `r1` after
/// moving by `shift`, stays inside `[0, extent]`; its middle when nothing does.
fn clamp_start(x: f32, shift: f32, r0: f32, r1: f32, extent: f32) -> f32 {
    let lo = r0.max(r1 - shift);
    let hi = (extent - r0).min(extent - r1 - shift);
    if lo <= hi {
        x.clamp(lo, hi)
    } else {
        (lo + hi) / 2.0
    }
}

fn apart(a: &ObjectPath, b: &ObjectPath) -> bool {
    (0..=16).all(|k| {
        let t = k as f32 / 16.0;
        let ((ca, ra), (cb, rb)) = (a.at(t), b.at(t));
        (ca[0] - cb[0]).hypot(ca[1] - cb[1]) >= ra + rb
    })
}

/// Draws each object's start place from the plan's distribution with `seed` (kept inside a
/// canvas of `aspect` = height / width for the whole path; the path in canvas widths), so the same seed gives the same
/// layout; with two or more objects, draws again (up to 32 times) until no two paths meet.
pub fn sample_layout(plan: &Plan, seed: u64, aspect: f32) -> Layout {
    let key = noise::key(seed, LAYOUT_STREAM);
    let n = plan.objects.len() as u64;
    let draw = |attempt: u64| -> Vec<ObjectPath> {
        plan.objects
            .iter()
            .enumerate()
            .map(|(k, o)| {
                let z = |axis: u64| noise::normal(key, (attempt * n + k as u64) * 2 + axis) as f32;
                // The plan's y is in canvas heights; paths are in canvas widths.
                let extent = [1.0, aspect];
                let start: [f32; 2] = std::array::from_fn(|i| {
                    let drawn = (o.start[i] + o.start_std[i] * z(i as u64)) * extent[i];
                    clamp_start(drawn, o.shift[i] * extent[i], o.radius[0], o.radius[1], extent[i])
                });
                ObjectPath { rgb: o.rgb, start, end: [start[0] + o.shift[0], start[1] + o.shift[1] * aspect], radius: o.radius, silhouette: o.silhouette.clone() }
            })
            .collect()
    };
    let all_apart = |p: &[ObjectPath]| p.iter().enumerate().all(|(i, a)| p[i + 1..].iter().all(|b| apart(a, b)));
    let mut objects = draw(0);
    for attempt in 1..TRIES {
        if all_apart(&objects) {
            break;
        }
        objects = draw(attempt);
    }
    Layout { background: plan.background, objects }
}

/// How much of the pixel at offset `d` (pixels) from an object's centre the object covers:
/// an anti-aliased disc of radius `r` pixels, or the silhouette (square, side `size`)
/// sampled bilinearly at `d` in units of `r`.
fn coverage(d: [f32; 2], r: f32, silhouette: Option<&[f32]>) -> f32 {
    let Some(cells) = silhouette else {
        return (r + 0.5 - d[0].hypot(d[1])).clamp(0.0, 1.0);
    };
    let size = (cells.len() as f32).sqrt().round() as usize;
    // Cell centres sit at (k + 0.5) / size of the ±EXTENT span.
    let grid = |v: f32| (v / r.max(1e-6) + SILHOUETTE_EXTENT) / (2.0 * SILHOUETTE_EXTENT) * size as f32 - 0.5;
    let (gx, gy) = (grid(d[0]), grid(d[1]));
    let cell = |i: isize, j: isize| if (0..size as isize).contains(&i) && (0..size as isize).contains(&j) { cells[j as usize * size + i as usize] } else { 0.0 };
    let (i, j) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - i, gy - j);
    let (i, j) = (i as isize, j as isize);
    let top = cell(i, j) * (1.0 - fx) + cell(i + 1, j) * fx;
    let bottom = cell(i, j + 1) * (1.0 - fx) + cell(i + 1, j + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// What a layout makes up for when it is painted: a VAE that wears objects away at their
/// edges over a clip. The width it wears off rises linearly from nothing at frame `from` (the
/// last frame of the VAE's first temporal chunk) to `pixels` at the last frame, and each
/// object is painted that much wider all round (its radius grown by it), so that through the
/// VAE it keeps its planned size (docs/generate.md, "Layout erosion").
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Erosion {
    /// Pixels worn off an object's edge by the last frame.
    pub pixels: f32,
    /// The last frame painted at the planned size.
    pub from: usize,
}

impl Erosion {
    /// Pixels added to each object's radius in frame `f` of `frames`.
    pub fn extra(&self, f: usize, frames: usize) -> f32 {
        if self.pixels <= 0.0 || f <= self.from || frames <= self.from + 1 {
            return 0.0;
        }
        self.pixels * ((f - self.from) as f32 / (frames - 1 - self.from) as f32).min(1.0)
    }
}

impl Layout {
    /// The layout as pixels `[1, 3, frames, height, width]` in [−1, 1]: the background, and
    /// each object in its colour, as its silhouette or an anti-aliased disc (later objects
    /// over earlier ones).
    pub fn paint(&self, width: usize, height: usize, frames: usize, device: &Device) -> Result<Tensor> {
        self.paint_eroded(width, height, frames, Erosion::default(), device)
    }

    /// [`Self::paint`], each object painted wider over the clip by what `erosion` wears off.
    pub fn paint_eroded(&self, width: usize, height: usize, frames: usize, erosion: Erosion, device: &Device) -> Result<Tensor> {
        let covers = self.coverages(width, height, frames, erosion);
        self.compose(&covers, width, height, frames, device)
    }

    /// Each object's coverage of each pixel (`[object][frame · height · width + pixel]`, in
    /// [0, 1]), painted wider by `erosion`.
    pub fn coverages(&self, width: usize, height: usize, frames: usize, erosion: Erosion) -> Vec<Vec<f32>> {
        let plane = width * height;
        let mut covers = vec![vec![0f32; frames * plane]; self.objects.len()];
        for f in 0..frames {
            for ((o, cover), (c, r)) in self.objects.iter().zip(covers.iter_mut()).zip(self.placed(f, frames, width, erosion)) {
                for y in 0..height {
                    for x in 0..width {
                        cover[f * plane + y * width + x] = coverage([x as f32 + 0.5 - c[0], y as f32 + 0.5 - c[1]], r, o.silhouette.as_deref());
                    }
                }
            }
        }
        covers
    }

    /// Each object's centre and radius in frame `f` of `frames`, in pixels of a canvas
    /// `width` wide, its radius grown by `erosion`.
    fn placed(&self, f: usize, frames: usize, width: usize, erosion: Erosion) -> Vec<([f32; 2], f32)> {
        let t = if frames > 1 { f as f32 / (frames - 1) as f32 } else { 0.0 };
        let scale = width as f32; // canvas units → pixels
        let extra = erosion.extra(f, frames);
        self.objects
            .iter()
            .map(|o| {
                let (c, r) = o.at(t);
                ([c[0] * scale, c[1] * scale], r * scale + extra)
            })
            .collect()
    }

    /// Pixels `[1, 3, frames, height, width]` in [−1, 1]: the background, and each object in
    /// its colour where `covers` (as [`Self::coverages`] makes them) say, later objects over
    /// earlier ones.
    pub fn compose(&self, covers: &[Vec<f32>], width: usize, height: usize, frames: usize, device: &Device) -> Result<Tensor> {
        let plane = width * height;
        let mut data = vec![0f32; 3 * frames * plane];
        for p in 0..frames * plane {
            let mut rgb = self.background;
            for (o, cover) in self.objects.iter().zip(covers) {
                for (channel, target) in rgb.iter_mut().zip(o.rgb) {
                    *channel += (target - *channel) * cover[p];
                }
            }
            let (f, q) = (p / plane, p % plane);
            for (i, v) in rgb.iter().enumerate() {
                data[(i * frames + f) * plane + q] = v * 2.0 - 1.0;
            }
        }
        Tensor::from_vec(data, (1, 3, frames, height, width), device)
    }

    /// One step of making up for what a VAE does to the objects' outlines: in the first
    /// `decoded.dims()[2]` frames, each object's coverage moves by `gain` times the gap between
    /// `target` (what it should look like) and what the VAE's round trip of the painting
    /// shows (`decoded`, `[1, 3, F, H, W]` in [−1, 1]: each pixel's share of the way from the
    /// background to the object's colour), clamped to [0, 1]. Only pixels near an object (within
    /// twice its radius and two pixels, the nearer object's where two are near) change, and
    /// only in coverage, so no colour but the planned ones is painted.
    pub fn refine(&self, covers: &mut [Vec<f32>], target: &[Vec<f32>], decoded: &Tensor, frames: usize, erosion: Erosion, gain: f32) -> Result<()> {
        let (_, channels, done, height, width) = decoded.dims5()?;
        let plane = width * height;
        let fits = |c: &[Vec<f32>]| c.len() == self.objects.len() && c.iter().all(|v| v.len() == frames * plane);
        if channels != 3 || done > frames || !fits(covers) || !fits(target) {
            candle_core::bail!("refine: a round trip of {:?} does not fit coverages of {} objects × {frames} frames of {width}×{height}", decoded.dims(), self.objects.len());
        }
        let dec: Vec<f32> = decoded.flatten_all()?.to_vec1()?;
        let bg = self.background;
        for f in 0..done {
            let placed = self.placed(f, frames, width, erosion);
            for y in 0..height {
                for x in 0..width {
                    let p = [x as f32 + 0.5, y as f32 + 0.5];
                    // The nearest object in units of its radius, if the pixel is near it.
                    let near = placed
                        .iter()
                        .enumerate()
                        .map(|(k, (c, r))| (k, (p[0] - c[0]).hypot(p[1] - c[1]), *r))
                        .filter(|&(_, d, r)| d <= 2.0 * r + 2.0)
                        .min_by(|a, b| (a.1 / a.2.max(1e-3)).total_cmp(&(b.1 / b.2.max(1e-3))));
                    let Some((k, _, _)) = near else { continue };
                    let colour = self.objects[k].rgb;
                    let span: [f32; 3] = std::array::from_fn(|i| colour[i] - bg[i]);
                    let norm: f32 = span.iter().map(|v| v * v).sum();
                    if norm < 0.01 {
                        continue;
                    }
                    let q = y * width + x;
                    let seen: f32 = (0..3).map(|i| ((dec[(i * done + f) * plane + q] + 1.0) * 0.5 - bg[i]) * span[i]).sum::<f32>() / norm;
                    let i = f * plane + q;
                    covers[k][i] = (covers[k][i] + gain * (target[k][i] - seen.clamp(0.0, 1.0))).clamp(0.0, 1.0);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_models::planner::ObjectPlan;

    fn plan(objects: Vec<ObjectPlan>) -> Plan {
        Plan { background: [0.1, 0.1, 0.1], objects }
    }

    fn moving_right() -> ObjectPlan {
        ObjectPlan { rgb: [0.9, 0.1, 0.1], start: [0.3, 0.5], start_std: [0.1, 0.2], shift: [0.35, 0.0], radius: [0.1, 0.1], silhouette: None }
    }

    #[test]
    fn paths_stay_inside_and_the_seed_decides_the_draw() {
        let p = plan(vec![moving_right()]);
        let a = sample_layout(&p, 1, 1.0);
        assert_eq!(a, sample_layout(&p, 1, 1.0));
        let starts: Vec<f32> = (0..50).map(|s| sample_layout(&p, s, 1.0).objects[0].start[1]).collect();
        assert!(starts.iter().any(|&y| (y - starts[0]).abs() > 0.05), "different seeds, different places");
        for s in 0..50 {
            let o = &sample_layout(&p, s, 1.0).objects[0];
            assert!((o.end[0] - o.start[0] - 0.35).abs() < 1e-6, "the shift is kept");
            for t in [0.0, 0.5, 1.0] {
                let (c, r) = o.at(t);
                assert!(c[0] - r >= -1e-6 && c[0] + r <= 1.0 + 1e-6 && c[1] - r >= -1e-6 && c[1] + r <= 1.0 + 1e-6, "seed {s}: {o:?}");
            }
        }
        // A path that cannot fit is centred.
        let wide = plan(vec![ObjectPlan { shift: [0.9, 0.0], ..moving_right() }]);
        let o = &sample_layout(&wide, 0, 1.0).objects[0];
        assert!((o.start[0] + o.end[0] - 1.0).abs() < 1e-5, "{o:?}");
    }

    #[test]
    fn two_objects_are_drawn_apart() {
        let p = plan(vec![moving_right(), ObjectPlan { rgb: [0.1, 0.1, 0.9], ..moving_right() }]);
        for s in 0..20 {
            let l = sample_layout(&p, s, 1.0);
            assert!(apart(&l.objects[0], &l.objects[1]), "seed {s}: {l:?}");
        }
    }

    #[test]
    fn paint_draws_each_frame_where_the_path_says() {
        let l = Layout {
            background: [0.0, 0.0, 0.0],
            objects: vec![ObjectPath { rgb: [1.0, 1.0, 1.0], start: [0.25, 0.5], end: [0.75, 0.5], radius: [0.125, 0.25], silhouette: None }],
        };
        let x = l.paint(32, 32, 3, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[1, 3, 3, 32, 32]);
        let red: Vec<Vec<Vec<f32>>> = x.get(0).unwrap().get(0).unwrap().to_vec3().unwrap();
        // Frame 0: centre (8, 16) px, radius 4 px; frame 2: centre (24, 16), radius 8.
        assert_eq!(red[0][16][8], 1.0);
        assert_eq!(red[0][16][24], -1.0);
        assert_eq!(red[2][16][24], 1.0);
        assert_eq!(red[2][16][8], -1.0);
        let area = |f: usize| red[f].iter().flatten().map(|v| (v + 1.0) / 2.0).sum::<f32>();
        let pi = std::f32::consts::PI;
        assert!((area(0) - pi * 16.0).abs() < 2.0, "{}", area(0));
        assert!((area(2) - pi * 64.0).abs() < 3.0, "{}", area(2));
    }

    #[test]
    fn erosion_paints_later_frames_wider() {
        // Radius 8 px on 64: painted 2 px wider by the last frame, 1 px half way.
        let l = Layout {
            background: [0.0, 0.0, 0.0],
            objects: vec![ObjectPath { rgb: [1.0, 1.0, 1.0], start: [0.5, 0.5], end: [0.5, 0.5], radius: [0.125, 0.125], silhouette: None }],
        };
        let erosion = Erosion { pixels: 2.0, from: 4 };
        let areas = |x: Tensor| -> Vec<f32> {
            let red: Vec<Vec<Vec<f32>>> = x.get(0).unwrap().get(0).unwrap().to_vec3().unwrap();
            red.iter().map(|f| f.iter().flatten().map(|v| (v + 1.0) / 2.0).sum::<f32>()).collect()
        };
        let plain = areas(l.paint(64, 64, 17, &Device::Cpu).unwrap());
        let wider = areas(l.paint_eroded(64, 64, 17, erosion, &Device::Cpu).unwrap());
        for f in 0..=4 {
            assert_eq!(wider[f], plain[f], "frame {f}: up to `from`, as planned");
        }
        let pi = std::f32::consts::PI;
        assert!((wider[10] - pi * 81.0).abs() < 2.0, "{}", wider[10]);
        assert!((wider[16] - pi * 100.0).abs() < 2.0, "{}", wider[16]);
        assert!(wider.windows(2).skip(4).all(|w| w[1] >= w[0]), "{wider:?}");
        // Nothing to ramp over: a clip no longer than `from`, or no erosion.
        assert_eq!(erosion.extra(0, 1), 0.0);
        assert_eq!(erosion.extra(4, 5), 0.0);
        assert_eq!(Erosion { pixels: 0.0, from: 0 }.extra(16, 17), 0.0);
    }

    #[test]
    fn refine_moves_outlines_by_what_the_round_trip_lost_and_nothing_else() {
        // A red disc of radius 6 px at (16, 16) on grey, 32×32, two frames.
        let l = Layout { background: [0.5; 3], objects: vec![ObjectPath { rgb: [1.0, 0.0, 0.0], start: [0.5, 0.5], end: [0.5, 0.5], radius: [6.0 / 32.0; 2], silhouette: None }] };
        let (w, h, plane) = (32, 32, 32 * 32);
        let none = Erosion::default();
        let target = l.coverages(w, h, 2, none);
        // A round trip that shows the painting as it is changes nothing.
        let mut covers = target.clone();
        l.refine(&mut covers, &target, &l.compose(&target, w, h, 2, &Device::Cpu).unwrap(), 2, none, 1.0).unwrap();
        assert_eq!(covers, target);
        // One that shows the first frame's disc 2 px to the right, and a stray red pixel in a
        // far corner (where the plan covers nothing the correction can only take away; the
        // reach is tested below).
        let shifted = Layout { objects: vec![ObjectPath { start: [0.5625, 0.5], end: [0.5625, 0.5], ..l.objects[0].clone() }], ..l.clone() };
        let mut seen = shifted.coverages(w, h, 1, none);
        seen[0][0] = 1.0;
        let decoded = l.compose(&seen, w, h, 1, &Device::Cpu).unwrap();
        l.refine(&mut covers, &target, &decoded, 2, none, 0.5).unwrap();
        let (mut grew, mut shrank) = (0, 0);
        for q in 0..plane {
            let d = ((q % w) as f32 + 0.5 - 16.0).hypot((q / w) as f32 + 0.5 - 16.0);
            let want = if d <= 14.0 { (target[0][q] + 0.5 * (target[0][q] - seen[0][q])).clamp(0.0, 1.0) } else { target[0][q] };
            assert!((covers[0][q] - want).abs() < 1e-4, "pixel {q}: {} against {want}", covers[0][q]);
            grew += (covers[0][q] > target[0][q] + 1e-3) as usize;
            shrank += (covers[0][q] < target[0][q] - 1e-3) as usize;
        }
        assert!(grew > 0 && shrank > 0, "the left edge made up, the right held back: {grew}, {shrank}");
        assert_eq!(covers[0][0], 0.0, "where the plan covers nothing, a stray in the round trip paints nothing");
        assert_eq!(covers[0][plane..], target[0][plane..], "frames past the round trip as planned");
        // A round trip of another size is refused, and changes nothing.
        let before = covers.clone();
        let small = l.compose(&l.coverages(16, 16, 1, none), 16, 16, 1, &Device::Cpu).unwrap();
        let e = l.refine(&mut covers, &target, &small, 2, none, 1.0).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");
        assert_eq!(covers, before);
    }

    #[test]
    fn refine_reaches_only_near_an_object_and_skips_one_the_colour_of_its_background() {
        // An 8×8 silhouette (radius 6 px at (16, 16), cells 1.5 px) that is solid in its
        // middle and half covers its top-left corner cell, whose centre falls on pixel (5, 5):
        // 14.8 px out, past the 2·6 + 2 px that refine reaches. A round trip that shows only
        // the background would make up every partly covered pixel within reach, and that one
        // too were it not for the reach.
        let mut cells = vec![0.0f32; 64];
        for j in 2..6 {
            for i in 2..6 {
                cells[j * 8 + i] = 1.0;
            }
        }
        cells[0] = 0.5;
        let object = ObjectPath { rgb: [1.0, 0.0, 0.0], start: [0.5, 0.5], end: [0.5, 0.5], radius: [6.0 / 32.0; 2], silhouette: Some(cells) };
        let l = Layout { background: [0.5; 3], objects: vec![object] };
        let none = Erosion::default();
        let target = l.coverages(32, 32, 1, none);
        let corner = 5 * 32 + 5;
        assert_eq!(target[0][corner], 0.5);
        let background = l.compose(&[vec![0.0; 32 * 32]], 32, 32, 1, &Device::Cpu).unwrap();
        let mut covers = target.clone();
        l.refine(&mut covers, &target, &background, 1, none, 1.0).unwrap();
        assert_eq!(covers[0][corner], 0.5, "out of reach, as planned");
        assert!((0..32 * 32).any(|q| covers[0][q] > target[0][q] + 1e-3), "the soft edge within reach made up");
        // An object the colour of its background gives no direction to read coverage along:
        // it is left as planned, not filled with NaN.
        let hidden = Layout { objects: vec![ObjectPath { rgb: [0.5; 3], ..l.objects[0].clone() }], ..l.clone() };
        let mut covers = target.clone();
        hidden.refine(&mut covers, &target, &background, 1, none, 1.0).unwrap();
        assert_eq!(covers, target);
    }

    #[test]
    fn paint_scales_a_silhouette_to_the_planned_size() {
        // A square of the disc's area (half-side √π/2 radii), as cell coverages on 16 cells.
        let n = 16;
        let half = std::f32::consts::PI.sqrt() / 2.0;
        let cell = 2.0 * SILHOUETTE_EXTENT / n as f32;
        let cover = |k: usize| {
            let lo = k as f32 * cell - SILHOUETTE_EXTENT;
            ((lo + cell).min(half) - lo.max(-half)).max(0.0) / cell
        };
        let square: Vec<f32> = (0..n * n).map(|k| cover(k % n) * cover(k / n)).collect();
        let path = |silhouette| ObjectPath { rgb: [1.0, 1.0, 1.0], start: [0.5, 0.5], end: [0.5, 0.5], radius: [0.25, 0.25], silhouette };
        let red = |o: ObjectPath| -> Vec<Vec<f32>> {
            let l = Layout { background: [0.0, 0.0, 0.0], objects: vec![o] };
            l.paint(64, 64, 1, &Device::Cpu).unwrap().get(0).unwrap().get(0).unwrap().get(0).unwrap().to_vec2().unwrap()
        };
        let (sq, disc) = (red(path(Some(square))), red(path(None)));
        let area = |img: &[Vec<f32>]| img.iter().flatten().map(|v| (v + 1.0) / 2.0).sum::<f32>();
        let pi = std::f32::consts::PI;
        // Radius 16 px: the square's area is the disc's, within the grid's blur.
        assert!((area(&sq) - pi * 256.0).abs() < 0.05 * pi * 256.0, "{}", area(&sq));
        // 11.5 px along both axes from the centre (1.02 radii away): mostly inside the
        // square (its corner is 14.2 px along each), at the disc's edge.
        assert!(sq[43][43] > 0.2 && sq[43][43] > disc[43][43] + 0.5, "{} {}", sq[43][43], disc[43][43]);
        assert_eq!(sq[32][32], 1.0);
        assert_eq!(sq[32][52], -1.0, "outside the square's side");
    }
}
