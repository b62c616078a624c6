//! # reel-eval — how good is a model?
//!
//! - [`scorer`] reads a clip's scene back from its pixels and [`adherence`] checks it against
//!   the prompt's labels (Shapes World's "Scoring a generated clip");
//! - [`degrade`] damages clips (blur, noise, colour shift, compression, rescaling) and
//!   [`robustness`] measures the scorer on Shapes World's own clips, clean and damaged;
//! - [`temporal`] measures flicker, motion smoothness, subject consistency and dynamic degree;
//! - [`frechet`] is the Fréchet distance between feature statistics (FID/FVD's formula) and
//!   [`features`] the networks that give the features (Reel's Shapes network, I3D);
//! - [`evaluate`] runs all of it over a manifest and [`report`] writes HTML, Markdown and JSON.

pub mod adherence;
pub mod degrade;
mod error;
pub mod evaluate;
pub mod features;
pub mod frechet;
pub mod image;
pub mod report;
pub mod robustness;
pub mod scorer;
pub mod temporal;

pub use adherence::{score_clip, summarize, Attribute, Check, ClipScore, Confusion, Summary};
pub use degrade::Degradation;
pub use error::{EvalError, Result};
pub use evaluate::{evaluate_manifest, Evaluation};
pub use report::write_report;
pub use scorer::{analyze, Reading};

/// Runs `f` on a rayon pool of `threads` threads (on the global pool if one cannot be built).
pub(crate) fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
