//! # reel-models — Reel's models on candle
//!
//! The Wan2.1 diffusion transformer ([`wan::WanTransformer3DModel`]) and causal
//! VAE ([`wan::AutoencoderKLWan`]), shared
//! layers (attention that stays bounded in memory, norms, embeddings, 3-D
//! RoPE), and loading of the diffusers directory layout. Weight names are the
//! diffusers checkpoint keys, so real Wan2.1 weights and Reel's own small
//! models load through the same code.

// Enables gemm's AVX-512 kernels for candle through feature unification (see Cargo.toml).
use gemm as _;

mod error;
pub mod layers;
pub mod inspect;
pub mod loading;
pub mod planner;
pub mod text;
pub mod wan;

use std::path::Path;

use candle_core::{DType, Device};

pub use error::{ModelError, Result};

/// A component's folder, its parsed config and a var builder over its weights.
fn open_component<C: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    what: &'static str,
    dtype: DType,
    device: &Device,
) -> Result<(std::path::PathBuf, C, candle_nn::VarBuilder<'static>)> {
    let dir = loading::resolve_component(dir, name)?;
    let (config, vb) = loading::load_component(&dir, dtype, device)?;
    let config = serde_json::from_value(config)
        .map_err(|e| ModelError::InvalidFile { what, path: dir.join("config.json"), reason: e.to_string() })?;
    Ok((dir, config, vb))
}

/// Loads a Wan transformer from a diffusers component folder (or a model folder's `transformer/`).
pub fn load_wan_transformer(dir: &Path, dtype: DType, device: &Device) -> Result<wan::WanTransformer3DModel> {
    let (dir, config, vb) = open_component::<wan::WanTransformerConfig>(dir, "transformer", "transformer config", dtype, device)?;
    config.validate().map_err(ModelError::Config)?;
    wan::WanTransformer3DModel::new(&config, vb).map_err(|e| loading::weights_error(&dir, e))
}

/// Loads a Wan VAE from a diffusers component folder (or a model folder's `vae/`).
pub fn load_wan_vae(dir: &Path, dtype: DType, device: &Device) -> Result<wan::AutoencoderKLWan> {
    let (dir, config, vb) = open_component::<wan::WanVaeConfig>(dir, "vae", "vae config", dtype, device)?;
    config.validate().map_err(ModelError::Config)?;
    wan::AutoencoderKLWan::new(&config, vb).map_err(|e| loading::weights_error(&dir, e))
}

/// Loads a layout planner from a component folder (or a model folder's `planner/`).
pub fn load_layout_planner(dir: &Path, dtype: DType, device: &Device) -> Result<planner::LayoutPlanner> {
    let (dir, config, vb) = open_component::<planner::LayoutPlannerConfig>(dir, "planner", "planner config", dtype, device)?;
    config.validate().map_err(ModelError::Config)?;
    planner::LayoutPlanner::new(&config, vb).map_err(|e| loading::weights_error(&dir, e))
}

/// Loads a text encoder from a component folder (or a model folder's `text_encoder/`),
/// choosing the architecture from its `config.json` (`model_type` t5, umt5, mt5, bert or reel-text).
pub fn load_text_encoder(dir: &Path, dtype: DType, device: &Device) -> Result<Box<dyn text::TextEncoder>> {
    let dir = loading::resolve_component(dir, "text_encoder")?;
    let (config, vb) = loading::load_component(&dir, dtype, device)?;
    let bad = |e: serde_json::Error| ModelError::InvalidFile { what: "text encoder config", path: dir.join("config.json"), reason: e.to_string() };
    let model_type = config["model_type"].as_str().unwrap_or_default().to_string();
    let encoder: Box<dyn text::TextEncoder> = match model_type.as_str() {
        "t5" | "umt5" | "mt5" => {
            let cfg: text::t5::T5Config = serde_json::from_value(config).map_err(bad)?;
            Box::new(text::t5::T5Encoder::new(&cfg, vb).map_err(|e| loading::weights_error(&dir, e))?)
        }
        "reel-text" => {
            let cfg: text::reel_text::ReelTextConfig = serde_json::from_value(config).map_err(bad)?;
            Box::new(text::reel_text::ReelTextEncoder::new(&cfg, vb).map_err(|e| loading::weights_error(&dir, e))?)
        }
        "bert" => {
            let cfg: text::bert::BertConfig = serde_json::from_value(config).map_err(bad)?;
            Box::new(text::bert::BertEncoder::new(&cfg, vb).map_err(|e| loading::weights_error(&dir, e))?)
        }
        other => {
            return Err(ModelError::Config(format!(
                "text encoder model_type '{other}' in '{}' is not supported (t5, umt5, mt5, bert, reel-text)",
                dir.join("config.json").display()
            )))
        }
    };
    Ok(encoder)
}
