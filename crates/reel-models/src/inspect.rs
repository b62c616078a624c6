//! Facts about a model folder without loading its weights: components, classes,
//! parameter counts and dtypes, read from `config.json` and safetensors headers.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::loading::component_files;

/// One component folder.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentInfo {
    pub name: String,
    pub path: PathBuf,
    /// diffusers' `_class_name`, when the config has one.
    pub class_name: Option<String>,
    pub parameters: u64,
    /// Parameter count per stored dtype (`F32`, `BF16`, …).
    pub dtypes: BTreeMap<String, u64>,
    pub tensors: usize,
    pub files: usize,
    pub config: serde_json::Value,
}

/// A model folder (or a single component folder).
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// `model_index.json`'s `_class_name` (the pipeline), if any.
    pub pipeline: Option<String>,
    pub components: Vec<ComponentInfo>,
}

/// Reads the JSON header of a safetensors file: name → (dtype, shape).
pub fn safetensors_header(path: &Path) -> Result<BTreeMap<String, (String, Vec<u64>)>> {
    let bad = |reason: String| ModelError::InvalidFile { what: "safetensors", path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(format!("header length {len} is implausible")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|_| bad("the header is truncated".into()))?;
    let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, entry) in json.as_object().ok_or_else(|| bad("header is not an object".into()))? {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or("?").to_string();
        let shape = entry["shape"].as_array().map(|a| a.iter().filter_map(|d| d.as_u64()).collect()).unwrap_or_default();
        out.insert(name.clone(), (dtype, shape));
    }
    Ok(out)
}

fn component(name: &str, dir: &Path) -> Result<ComponentInfo> {
    let files = component_files(dir)?;
    let (mut parameters, mut tensors, mut dtypes) = (0u64, 0usize, BTreeMap::new());
    for file in &files.weights {
        for (_, (dtype, shape)) in safetensors_header(file)? {
            let n: u64 = shape.iter().product();
            parameters += n;
            tensors += 1;
            *dtypes.entry(dtype).or_insert(0) += n;
        }
    }
    Ok(ComponentInfo {
        name: name.to_string(),
        path: dir.to_path_buf(),
        class_name: files.config["_class_name"].as_str().map(String::from),
        parameters,
        dtypes,
        tensors,
        files: files.weights.len(),
        config: files.config,
    })
}

/// Describes a model folder (with `model_index.json`), a folder of component folders, or one component folder.
pub fn inspect(dir: &Path) -> Result<ModelInfo> {
    if !dir.is_dir() {
        return Err(ModelError::Io { path: dir.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory") });
    }
    let index_path = dir.join("model_index.json");
    if dir.join("config.json").is_file() {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(ModelInfo { path: dir.to_path_buf(), pipeline: None, components: vec![component(&name, dir)?] });
    }
    let mut pipeline = None;
    let mut names: Vec<String> = Vec::new();
    let mut index = serde_json::Value::Null;
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(|source| ModelError::Io { path: index_path.clone(), source })?;
        index = serde_json::from_str(&text)
            .map_err(|e| ModelError::InvalidFile { what: "model index", path: index_path.clone(), reason: e.to_string() })?;
        pipeline = index["_class_name"].as_str().map(String::from);
        if let Some(obj) = index.as_object() {
            // Components are `name: [library, class]`; other keys (`_class_name`, Reel's
            // default request under `reel`) are settings.
            names = obj.iter().filter(|(k, v)| !k.starts_with('_') && v.is_array()).map(|(k, _)| k.clone()).collect();
        }
    } else {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| ModelError::Io { path: dir.to_path_buf(), source })?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("config.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        names = entries;
    }
    let mut components = Vec::new();
    for name in names {
        let path = dir.join(&name);
        // Tokenizers and schedulers have configs but no weights.
        match component(&name, &path) {
            Ok(c) => components.push(c),
            Err(ModelError::NoWeights { .. }) | Err(ModelError::Io { .. }) if !path.join("config.json").is_file() || !has_safetensors(&path) => {
                components.push(ComponentInfo {
                    name,
                    path: path.clone(),
                    class_name: None,
                    parameters: 0,
                    dtypes: BTreeMap::new(),
                    tensors: 0,
                    files: 0,
                    config: std::fs::read_to_string(path.join("config.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    if components.is_empty() {
        return Err(ModelError::NoWeights { path: dir.to_path_buf() });
    }
    // A component whose config names no class (Reel's text encoder, a scheduler) has it in
    // the index: `name: [library, class]`.
    for c in &mut components {
        if c.class_name.is_none() {
            c.class_name = index[&c.name][1].as_str().map(String::from);
        }
    }
    Ok(ModelInfo { path: dir.to_path_buf(), pipeline, components })
}

fn has_safetensors(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|r| r.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))).unwrap_or(false)
}
