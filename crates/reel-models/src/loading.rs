//! Loading the diffusers directory layout: a model folder with `model_index.json`
//! and one folder per component, each with `config.json` and safetensors
//! (one file, or shards listed in `*.safetensors.index.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{ModelError, Result};

/// A component folder's config and weight files.
#[derive(Clone, Debug)]
pub struct ComponentFiles {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    pub weights: Vec<PathBuf>,
}

/// The folder of component `name`: `dir/name` when it exists (a whole model folder),
/// else `dir` itself when it is a component folder (has `config.json`).
pub fn resolve_component(dir: &Path, name: &str) -> Result<PathBuf> {
    if dir.join(name).join("config.json").is_file() {
        Ok(dir.join(name))
    } else if dir.join("config.json").is_file() {
        Ok(dir.to_path_buf())
    } else if !dir.is_dir() {
        Err(ModelError::Io { path: dir.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory") })
    } else {
        Err(ModelError::MissingComponent { path: dir.to_path_buf(), component: name.to_string() })
    }
}

fn read_json(path: &Path, what: &'static str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| ModelError::InvalidFile { what, path: path.to_path_buf(), reason: e.to_string() })
}

/// Finds `config.json` and the safetensors of a component folder.
pub fn component_files(dir: &Path) -> Result<ComponentFiles> {
    let config = read_json(&dir.join("config.json"), "config")?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ModelError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let index = entries.iter().find(|p| p.to_string_lossy().ends_with(".safetensors.index.json"));
    let weights = if let Some(index) = index {
        let json = read_json(index, "safetensors index")?;
        let map = json["weight_map"].as_object().ok_or_else(|| ModelError::InvalidFile {
            what: "safetensors index",
            path: index.clone(),
            reason: "no weight_map".into(),
        })?;
        let mut shards: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
        shards.sort();
        shards.dedup();
        for shard in &shards {
            if !shard.is_file() {
                return Err(ModelError::InvalidFile { what: "safetensors index", path: index.clone(), reason: format!("shard '{}' is missing", shard.display()) });
            }
        }
        shards
    } else {
        entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect()
    };
    if weights.is_empty() {
        return Err(ModelError::NoWeights { path: dir.to_path_buf() });
    }
    Ok(ComponentFiles { dir: dir.to_path_buf(), config, weights })
}

/// Reads every tensor of the files (f16/bf16 stay as stored; the var builder converts).
pub fn load_tensors(files: &[PathBuf], device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for file in files {
        let tensors = candle_core::safetensors::load(file, device)
            .map_err(|e| ModelError::InvalidFile { what: "safetensors", path: file.clone(), reason: e.to_string() })?;
        all.extend(tensors);
    }
    Ok(all)
}

/// Config, and a var builder over the weights converted to `dtype`.
pub fn load_component(dir: &Path, dtype: DType, device: &Device) -> Result<(serde_json::Value, VarBuilder<'static>)> {
    let files = component_files(dir)?;
    let tensors = load_tensors(&files.weights, device)?;
    Ok((files.config, VarBuilder::from_tensors(tensors, dtype, device)))
}

/// Turns a construction error into one that names the folder (candle's message names the tensor).
pub fn weights_error(dir: &Path, err: candle_core::Error) -> ModelError {
    ModelError::Weights { path: dir.to_path_buf(), reason: err.to_string() }
}
