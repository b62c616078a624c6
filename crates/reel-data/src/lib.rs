//! # reel-data — the data Reel trains and evaluates on
//!
//! Shapes World (`shared/specs/shapes-world.md`): a procedural, captioned
//! video world with exact labels and a held-out split of (colour, shape,
//! motion) triples, deterministic for a given `(seed, index, size, frames, fps)`
//! on every machine and thread count.
//!
//! ```text
//! reel data synth --out data/shapes --count 64 --format mp4
//! ```

pub mod caption;
mod error;
pub mod labels;
pub mod render;
pub mod rng;
pub mod scene;
mod synth;
mod world;

pub use error::{DataError, Result};
pub use labels::{is_held_out, triples, Camera, Color, Mood, Motion, ObjectLabels, SceneLabels, Scenes, Shape, Size, Speed, Split, Style, Theme};
pub use render::render_frame;
pub use scene::Scene;
pub use synth::{read_manifest, synthesize, ManifestEntry, SynthOptions, SynthReport, MANIFEST};
pub use world::{Clip, Sample, ShapesWorld, WorldConfig, MAX_FRAMES};
