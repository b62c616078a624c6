//! # reel-train — training Reel's models
//!
//! The optimiser-side building blocks every trainer uses: the learning-rate
//! schedule ([`schedule`]), global gradient-norm clipping ([`clip`]) and an
//! exponential moving average of the weights ([`ema`]). The trainers, run
//! configs, checkpoints and data parallelism build on them (docs/training.md).

pub mod clip;
pub mod ema;
pub mod schedule;
