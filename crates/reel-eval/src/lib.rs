//! # reel-eval — how good is a model?
//!
//! - [`scorer`] reads a clip's scene back from its pixels and [`adherence`] checks it against
//!   the prompt's labels (Shapes World's "Scoring a generated clip");
//! - [`degrade`] damages clips (blur, noise, colour shift, compression, rescaling) and
//!   [`robustness`] measures the scorer on Shapes World's own clips, clean and damaged.

pub mod adherence;
pub mod degrade;
pub mod image;
pub mod robustness;
pub mod scorer;

pub use adherence::{score_clip, summarize, Attribute, Check, ClipScore, Confusion, Summary};
pub use degrade::Degradation;
pub use scorer::{analyze, Reading};
