//! Training for Reel (docs/training.md): run configs, the data pipeline and latent
//! caches, the VAE and flow-matching transformer trainers, checkpoints with exact
//! resume, metrics and plots, and data parallelism over ranks.

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dist;
pub mod ema;
mod error;
pub mod metrics;
pub mod models;
pub mod optim;
pub mod planner;
pub mod schedule;
pub mod trainer;

pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use trainer::{export, train, Observer, Options, Outcome, Quiet};
