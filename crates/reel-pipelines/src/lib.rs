//! Text-to-video pipelines on Reel's models (ARCHITECTURE.md "Generation"):
//! encode the prompt (and the negative prompt, for guidance) → seeded latents →
//! denoise with classifier-free guidance (conditional and unconditional in one
//! batch) → decode as a stream of frames.
//!
//! The same text encoding ([`encode_prompts`]) is used by the trainer, so a
//! model sees its prompts the same way in training and in generation.

pub mod layout;
pub mod model;
pub mod request;
pub mod synonyms;
mod t2v;

pub use model::{settings, Model};
pub use request::{Request, RequestError, Resolved};
pub use t2v::{encode_prompts, frames_from_pixels, latent_noise, Components, Settings, LATENT_NOISE_STREAM};
