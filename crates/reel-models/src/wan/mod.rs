//! The Wan2.1 family (Wan Team, "Wan: Open and Advanced Large-Scale Video
//! Generative Models", 2025): the diffusion transformer. Weight names and
//! config keys are diffusers' (`WanTransformer3DModel`).

pub mod transformer;
pub mod vae;

pub use transformer::{SelfAttentionExtras, WanInput, WanTransformer3DModel, WanTransformerConfig};
pub use vae::{AutoencoderKLWan, LatentDistribution, Tiling, WanVaeConfig};
