//! [`ShapesWorld`]: deterministic captioned clips, in memory or streamed frame by frame.

use reel_media::{Frame, Rational};
use serde::{Deserialize, Serialize};

use crate::caption::caption;
use crate::error::{DataError, Result};
use crate::labels::{SceneLabels, Scenes, Split};
use crate::render::{frame_time, render_frame};
use crate::rng::Rng;
use crate::scene::{draw_scene, Scene};

const SCENE_STREAM: u64 = 1;
const CAPTION_STREAM: u64 = 2;
/// Most frames one clip may have.
pub const MAX_FRAMES: u32 = 100_000;

/// What a generator draws and at what size; `(seed, index, size, frames, fps)` with the split
/// and scene set fixes every pixel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: Rational,
    pub split: Split,
    /// `scoring`: only the spec's scoring case (one object, static camera, flat, neutral).
    pub scenes: Scenes,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self { seed: 0, width: 64, height: 64, frames: 17, fps: Rational::integer(8), split: Split::Train, scenes: Scenes::All }
    }
}

/// One clip's caption and labels, without pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub index: u64,
    pub caption: String,
    pub labels: SceneLabels,
}

/// One rendered clip.
#[derive(Clone, Debug)]
pub struct Clip {
    pub index: u64,
    pub caption: String,
    pub labels: SceneLabels,
    pub frames: Vec<Frame>,
}

/// The Shapes World generator (see `shared/specs/shapes-world.md`).
///
/// ```
/// use reel_data::{ShapesWorld, WorldConfig};
/// let world = ShapesWorld::new(WorldConfig::default())?;
/// let clip = world.clip(0);
/// assert_eq!(clip.frames.len(), 17);
/// println!("{}", clip.caption);
/// # Ok::<(), reel_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShapesWorld {
    config: WorldConfig,
}

impl ShapesWorld {
    /// Checks the size (even, 16..=1920) and frame count, then builds the generator.
    pub fn new(config: WorldConfig) -> Result<Self> {
        reel_media::check_size(config.width, config.height)?;
        if config.frames == 0 || config.frames > MAX_FRAMES {
            return Err(DataError::InvalidConfig {
                field: "frames",
                value: config.frames.to_string(),
                reason: format!("a clip has 1 to {MAX_FRAMES} frames"),
            });
        }
        Ok(Self { config })
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    fn aspect(&self) -> f64 {
        self.config.height as f64 / self.config.width as f64
    }

    /// The scene of clip `index`: labels, start places, camera.
    pub fn scene(&self, index: u64) -> Scene {
        let mut rng = Rng::for_item(self.config.seed, SCENE_STREAM, index);
        draw_scene(&mut rng, self.config.split, self.config.scenes, self.aspect())
    }

    /// Caption and labels of clip `index` (no rendering).
    pub fn sample(&self, index: u64) -> Sample {
        let scene = self.scene(index);
        self.sample_of(index, &scene)
    }

    /// Caption and labels of clip `index` whose scene is already drawn.
    pub fn sample_of(&self, index: u64, scene: &Scene) -> Sample {
        let mut rng = Rng::for_item(self.config.seed, CAPTION_STREAM, index);
        Sample { index, caption: caption(&mut rng, &scene.labels), labels: scene.labels.clone() }
    }

    /// The frames of a scene, rendered one at a time as they are asked for.
    pub fn frames<'a>(&'a self, scene: &'a Scene) -> impl Iterator<Item = Frame> + 'a {
        let (w, h, n) = (self.config.width, self.config.height, self.config.frames);
        (0..n).map(move |i| render_frame(scene, w, h, frame_time(i, n)))
    }

    /// Clip `index`, rendered whole.
    pub fn clip(&self, index: u64) -> Clip {
        let scene = self.scene(index);
        let Sample { caption, labels, .. } = self.sample_of(index, &scene);
        let frames = self.frames(&scene).collect();
        Clip { index, caption, labels, frames }
    }

    /// Clips `start`, `start + 1`, … without end: the in-memory source for training.
    pub fn clips(&self, start: u64) -> impl Iterator<Item = Clip> + '_ {
        (start..).map(|i| self.clip(i))
    }
}
