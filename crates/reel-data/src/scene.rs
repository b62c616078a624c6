//! Drawing a scene: labels, start places and the camera path, in world units
//! (one unit = the canvas width; y grows downwards).

use serde::{Deserialize, Serialize};

use crate::labels::{triples, Camera, Color, Motion, Mood, ObjectLabels, SceneLabels, Scenes, Shape, Size, Speed, Split, Style, Theme};
use crate::rng::Rng;

/// Minimum Euclidean distance (8-bit RGB) between an object's colour and the background after the mood.
pub const MIN_CONTRAST: f64 = 100.0;
/// Chance that a clip has two objects.
pub const TWO_OBJECT_CHANCE: f64 = 0.3;
/// Times at which placement is checked (motion and camera are smooth, so a fine grid plus a margin suffices).
const CHECK_STEPS: usize = 64;
/// Extra room kept between an object and the frame edge, and between two objects' paths (canvas widths).
const MARGIN: f64 = 0.01;
const PLACEMENT_TRIES: usize = 64;
/// How far a pan moves the view over the clip, and the zoom range.
pub const PAN_DISTANCE: f64 = 0.3;
pub const ZOOM_RANGE: (f64, f64) = (1.0, 1.4);

/// Where the camera looks at time `t` ∈ [0, 1]: the world point at the frame centre, and the zoom.
pub fn camera_at(camera: Camera, aspect: f64, t: f64) -> ([f64; 2], f64) {
    let centre_y = aspect / 2.0;
    match camera {
        Camera::Static => ([0.5, centre_y], 1.0),
        // The view moves left, so the scene slides right in the frame.
        Camera::PanLeft => ([0.5 + PAN_DISTANCE * (0.5 - t), centre_y], 1.0),
        Camera::PanRight => ([0.5 + PAN_DISTANCE * (t - 0.5), centre_y], 1.0),
        Camera::ZoomIn => ([0.5, centre_y], ZOOM_RANGE.0 + (ZOOM_RANGE.1 - ZOOM_RANGE.0) * t),
        Camera::ZoomOut => ([0.5, centre_y], ZOOM_RANGE.1 - (ZOOM_RANGE.1 - ZOOM_RANGE.0) * t),
    }
}

/// Where a world point lands in the frame (canvas units) at time `t`.
pub fn world_to_screen(camera: Camera, aspect: f64, t: f64, p: [f64; 2]) -> [f64; 2] {
    let (c, z) = camera_at(camera, aspect, t);
    [(p[0] - c[0]) * z + 0.5, (p[1] - c[1]) * z + aspect / 2.0]
}

/// One placed object.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacedObject {
    pub labels: ObjectLabels,
    /// World position of the centre at t = 0.
    pub start: [f64; 2],
}

impl PlacedObject {
    /// Centre (world units) and radius (canvas widths) at time `t` ∈ [0, 1].
    pub fn at(&self, t: f64) -> ([f64; 2], f64) {
        let l = self.labels;
        let r0 = l.size.radius();
        let d = l.speed.map_or(0.0, Speed::distance) * t;
        let [x, y] = self.start;
        match l.motion {
            Motion::Left => ([x - d, y], r0),
            Motion::Right => ([x + d, y], r0),
            Motion::Up => ([x, y - d], r0),
            Motion::Down => ([x, y + d], r0),
            Motion::Still => ([x, y], r0),
            Motion::Grow => ([x, y], r0 * (1.0 + (l.speed.map_or(1.0, Speed::scale) - 1.0) * t)),
            Motion::Shrink => ([x, y], r0 * (1.0 + (1.0 / l.speed.map_or(1.0, Speed::scale) - 1.0) * t)),
        }
    }

    /// Extent from the centre: (left, right, up, down), for a radius `r`.
    pub fn extent(shape: Shape, r: f64) -> [f64; 4] {
        match shape {
            Shape::Circle | Shape::Square => [r; 4],
            Shape::Triangle => [r * 0.866_025_4, r * 0.866_025_4, r, r * 0.5],
        }
    }

    /// Radius of a circle around the centre that holds the whole shape.
    pub fn bounding_radius(shape: Shape, r: f64) -> f64 {
        match shape {
            Shape::Square => r * std::f64::consts::SQRT_2,
            Shape::Circle | Shape::Triangle => r,
        }
    }
}

/// Everything needed to render a clip at any size and frame count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub labels: SceneLabels,
    pub objects: Vec<PlacedObject>,
    /// Height over width of the canvas the scene was placed for.
    pub aspect: f64,
    /// Seed of the night sky's star field.
    pub star_seed: u64,
}

impl Scene {
    /// The background colour after the mood, before grid, stars and vignette.
    pub fn background(&self) -> [f64; 3] {
        self.labels.mood.apply(self.labels.theme.rgb().map(f64::from))
    }
}

fn colour_distance(a: [f64; 3], b: [u8; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i] as f64).powi(2)).sum::<f64>().sqrt()
}

/// Whether an object with these labels stays fully inside the view for the whole clip.
fn inside_view(object: &PlacedObject, camera: Camera, aspect: f64) -> bool {
    (0..=CHECK_STEPS).all(|k| {
        let t = k as f64 / CHECK_STEPS as f64;
        let (centre, r) = object.at(t);
        let (_, zoom) = camera_at(camera, aspect, t);
        let [x, y] = world_to_screen(camera, aspect, t, centre);
        let [left, right, up, down] = PlacedObject::extent(object.labels.shape, r).map(|e| e * zoom + MARGIN);
        x - left >= 0.0 && x + right <= 1.0 && y - up >= 0.0 && y + down <= aspect
    })
}

/// Whether two objects' swept paths stay apart at every pair of times.
fn paths_apart(a: &PlacedObject, b: &PlacedObject) -> bool {
    let samples = |o: &PlacedObject| -> Vec<([f64; 2], f64)> {
        (0..=CHECK_STEPS / 4)
            .map(|k| {
                let (c, r) = o.at(k as f64 / (CHECK_STEPS / 4) as f64);
                (c, PlacedObject::bounding_radius(o.labels.shape, r))
            })
            .collect()
    };
    // Steps are at most 0.5/16 apart; pad by that much.
    let step_pad = 0.5 / (CHECK_STEPS / 4) as f64;
    let (sa, sb) = (samples(a), samples(b));
    sa.iter().all(|(ca, ra)| {
        sb.iter().all(|(cb, rb)| {
            let d = ((ca[0] - cb[0]).powi(2) + (ca[1] - cb[1]).powi(2)).sqrt();
            d > ra + rb + MARGIN + step_pad
        })
    })
}

fn draw_object(rng: &mut Rng, pool: &[(Color, Shape, Motion)], background: [f64; 3], taken: &[Color]) -> ObjectLabels {
    loop {
        let (color, shape, motion) = rng.choose(pool);
        let size = rng.choose(Size::ALL);
        let speed = (motion != Motion::Still).then(|| rng.choose(Speed::ALL));
        if taken.contains(&color) || colour_distance(background, color.rgb()) < MIN_CONTRAST {
            continue;
        }
        return ObjectLabels { color, shape, size, motion, speed };
    }
}

/// Draws scene `rng` for a canvas of height/width `aspect`, objects from `split`.
pub(crate) fn draw_scene(rng: &mut Rng, split: Split, scenes: Scenes, aspect: f64) -> Scene {
    let pool = match split {
        Split::Train => triples(false),
        Split::Holdout => triples(true),
        Split::All => {
            let mut all = triples(false);
            all.extend(triples(true));
            all
        }
    };
    'scene: loop {
        let (count, theme, camera, style, mood) = match scenes {
            Scenes::All => {
                let count = if rng.chance(TWO_OBJECT_CHANCE) { 2 } else { 1 };
                (count, rng.choose(Theme::ALL), rng.choose(Camera::ALL), rng.choose(Style::ALL), rng.choose(Mood::ALL))
            }
            Scenes::Scoring => (1, rng.choose(Theme::ALL), Camera::Static, Style::Flat, Mood::Neutral),
        };
        let star_seed = rng.next_u64();
        let background = mood.apply(theme.rgb().map(f64::from));
        let mut objects: Vec<PlacedObject> = Vec::with_capacity(count);
        for _ in 0..count {
            let taken: Vec<Color> = objects.iter().map(|o| o.labels.color).collect();
            let labels = draw_object(rng, &pool, background, &taken);
            let placed = (0..PLACEMENT_TRIES).find_map(|_| {
                // A start place drawn uniformly over the first frame, mapped back into the world.
                let screen = [rng.unit(), rng.unit() * aspect];
                let (c, z) = camera_at(camera, aspect, 0.0);
                let start = [(screen[0] - 0.5) / z + c[0], (screen[1] - aspect / 2.0) / z + c[1]];
                let candidate = PlacedObject { labels, start };
                (inside_view(&candidate, camera, aspect) && objects.iter().all(|o| paths_apart(o, &candidate)))
                    .then_some(candidate)
            });
            match placed {
                Some(p) => objects.push(p),
                None => continue 'scene,
            }
        }
        let labels = SceneLabels { objects: objects.iter().map(|o| o.labels).collect(), theme, camera, style, mood };
        return Scene { labels, objects, aspect, star_seed };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pans_move_the_view_by_the_spec_distance() {
        let ([x0, _], _) = camera_at(Camera::PanLeft, 1.0, 0.0);
        let ([x1, _], _) = camera_at(Camera::PanLeft, 1.0, 1.0);
        assert!((x0 - x1 - PAN_DISTANCE).abs() < 1e-12, "the view moves left");
        // A fixed world point slides right in the frame.
        let p = [0.5, 0.5];
        assert!(world_to_screen(Camera::PanLeft, 1.0, 1.0, p)[0] > world_to_screen(Camera::PanLeft, 1.0, 0.0, p)[0]);
        assert_eq!(camera_at(Camera::ZoomOut, 1.0, 0.0).1, 1.4);
    }

    #[test]
    fn growth_reaches_the_spec_scale() {
        let labels = ObjectLabels { color: Color::Red, shape: Shape::Circle, size: Size::Small, motion: Motion::Grow, speed: Some(Speed::Fast) };
        let o = PlacedObject { labels, start: [0.5, 0.5] };
        assert!((o.at(1.0).1 - 0.16).abs() < 1e-12);
        let shrink = PlacedObject { labels: ObjectLabels { motion: Motion::Shrink, ..labels }, ..o };
        assert!((shrink.at(1.0).1 - 0.04).abs() < 1e-12);
    }
}
