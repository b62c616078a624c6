//! The models of a run: built fresh from the config or loaded from a model directory,
//! trainable weights held in `VarMap`s, and exported in the diffusers layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use reel_models::loading::{component_files, load_tensors, weights_error, ComponentFiles};
use reel_models::text::reel_text::{ReelTextConfig, ReelTextEncoder};
use reel_models::text::tokenizer::TextTokenizer;
use reel_models::text::TextEncoder;
use reel_models::wan::{AutoencoderKLWan, WanTransformer3DModel, WanTransformerConfig, WanVaeConfig};
use serde_json::json;

use crate::config::{RunConfig, SourceKind, Task};
use crate::error::{Result, TrainError};

pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where a component's weights live.
pub enum Weights {
    /// In memory as variables (trainable, or fresh and frozen).
    Vars(VarMap),
    /// Loaded read-only from a component folder (exported by copying it).
    Dir(PathBuf),
}

pub enum Text {
    Reel { model: ReelTextEncoder, map: VarMap },
    Other { model: Box<dyn TextEncoder>, dir: PathBuf },
}

impl Text {
    pub fn encoder(&self) -> &dyn TextEncoder {
        match self {
            Text::Reel { model, .. } => model,
            Text::Other { model, .. } => model.as_ref(),
        }
    }
}

/// Every model a run uses.
pub struct Models {
    pub transformer: Option<(WanTransformer3DModel, VarMap)>,
    pub vae: AutoencoderKLWan,
    pub vae_weights: Weights,
    pub text: Option<Text>,
    pub tokenizer: Option<TextTokenizer>,
    /// Whether the text encoder trains.
    pub train_text: bool,
}

/// A var builder that creates the variables of a component in `map`: from `loaded` weights
/// (a component folder's, every one required), or else fresh with candle's initialisations
/// drawn from Reel's seeded counter-based streams (candle's CPU generator cannot be seeded),
/// so the same seed gives the same fresh weights on every run, rank and thread count.
pub(crate) fn vars(map: &VarMap, seed: u64, component: &str, loaded: Option<&ComponentFiles>) -> Result<VarBuilder<'static>> {
    let loaded = loaded.map(|f| load_tensors(&f.weights, &Device::Cpu)).transpose()?;
    let backend = VarInit { map: map.clone(), seed, component: component.to_string(), loaded };
    Ok(VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu))
}

struct VarInit {
    map: VarMap,
    seed: u64,
    component: String,
    loaded: Option<HashMap<String, Tensor>>,
}

impl candle_nn::var_builder::SimpleBackend for VarInit {
    fn get(&self, s: candle_core::Shape, name: &str, h: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        use candle_nn::init::NormalOrUniform;
        use reel_schedulers::noise;
        let mut data = self.map.data().lock().expect("varmap lock");
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("'{name}' has shape {:?}, expected {:?}", v.shape(), s);
            }
            return Ok(v.as_tensor().clone());
        }
        if let Some(loaded) = &self.loaded {
            let t = loaded.get(name).ok_or_else(|| candle_core::Error::Msg(format!("no tensor '{name}'")))?;
            if t.elem_count() != s.elem_count() {
                candle_core::bail!("'{name}' has shape {:?}, expected {:?}", t.dims(), s);
            }
            let var = Var::from_tensor(&t.to_dtype(dtype)?.reshape(s)?)?;
            data.insert(name.to_string(), var.clone());
            return Ok(var.as_tensor().clone());
        }
        let n = s.elem_count();
        let key = noise::key(self.seed, crate::cache::fnv1a(format!("{}.{name}", self.component).as_bytes()));
        let normal = |mean: f64, std: f64| -> Vec<f32> { noise::gaussian(key, 0, n).into_iter().map(|x| (mean + std * x as f64) as f32).collect() };
        let uniform = |lo: f64, up: f64| -> Vec<f32> { (0..n as u64).map(|i| (lo + (up - lo) * noise::uniform(key, i)) as f32).collect() };
        let values = match h {
            candle_nn::Init::Const(c) => vec![c as f32; n],
            candle_nn::Init::Randn { mean, stdev } => normal(mean, stdev),
            candle_nn::Init::Uniform { lo, up } => uniform(lo, up),
            candle_nn::Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(&s) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => normal(0.0, std),
                    NormalOrUniform::Uniform => uniform(-(3f64.sqrt()) * std, 3f64.sqrt() * std),
                }
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        let data = self.map.data().lock().expect("varmap lock");
        data.get(name).map(|v| v.as_tensor().clone()).ok_or_else(|| candle_core::Error::Msg(format!("no variable '{name}'")))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().expect("varmap lock").contains_key(name)
    }
}

/// A component folder's parsed config.
fn parse<T: serde::de::DeserializeOwned>(files: &ComponentFiles) -> Result<T> {
    serde_json::from_value(files.config.clone()).map_err(|e| {
        TrainError::Model(reel_models::ModelError::InvalidFile { what: "config", path: files.dir.join("config.json"), reason: e.to_string() })
    })
}

/// A component folder's files and its parsed config.
fn open<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<(ComponentFiles, T)> {
    let files = component_files(dir)?;
    let config = parse(&files)?;
    Ok((files, config))
}

fn component(from: Option<&Path>, name: &str) -> Option<PathBuf> {
    from.map(|f| f.join(name)).filter(|d| d.join("config.json").is_file())
}

/// The word-level tokenizer for a fresh text encoder: every word of Shapes World's
/// phrases and, for folders and caches, of their captions.
pub fn fresh_tokenizer(cfg: &RunConfig, dataset: &crate::data::Dataset) -> Result<TextTokenizer> {
    let mut texts: Vec<&str> = reel_data::caption::phrases();
    if cfg.data.source != SourceKind::Shapes {
        match dataset {
            crate::data::Dataset::Files { items, .. } => texts.extend(items.iter().map(|i| i.caption.as_str())),
            crate::data::Dataset::Cache(c) => texts.extend(c.index().entries.iter().map(|e| e.caption.as_str())),
            crate::data::Dataset::Shapes { .. } => {}
        }
    }
    Ok(TextTokenizer::word_level_from_texts(texts)?)
}

impl Models {
    /// Builds or loads the models of `cfg`. `tokenizer` is the run's saved tokenizer, if any
    /// (a fresh text encoder needs one; `vocabulary` builds it on first start).
    pub fn build(cfg: &RunConfig, tokenizer: Option<TextTokenizer>) -> Result<Self> {
        let dev = Device::Cpu;
        let from = cfg.model.from.as_deref();
        if let Some(f) = from {
            if !f.is_dir() {
                return Err(TrainError::Config { path: f.to_path_buf(), reason: "model.from is not a model directory".into() });
            }
        }
        let clash = |name: &str| TrainError::Config {
            path: from.map(Path::to_path_buf).unwrap_or_default(),
            reason: format!("both model.from has {name}/ and [model.{name}] is set; keep one"),
        };
        // VAE.
        let (vae, vae_weights) = match (component(from, "vae"), &cfg.model.vae) {
            (Some(_), Some(_)) => return Err(clash("vae")),
            (Some(dir), None) if cfg.task == Task::Transformer => (reel_models::load_wan_vae(&dir, DType::F32, &dev)?, Weights::Dir(dir)),
            (Some(dir), None) => {
                let (files, vc): (_, WanVaeConfig) = open(&dir)?;
                let map = VarMap::new();
                let vae = AutoencoderKLWan::new(&vc, vars(&map, cfg.seed, "vae", Some(&files))?).map_err(|e| weights_error(&dir, e))?;
                (vae, Weights::Vars(map))
            }
            (None, Some(vc)) => {
                vc.validate().map_err(|r| TrainError::Config { path: PathBuf::from("[model.vae]"), reason: r })?;
                let map = VarMap::new();
                (AutoencoderKLWan::new(vc, vars(&map, cfg.seed, "vae", None)?)?, Weights::Vars(map))
            }
            (None, None) => {
                return Err(TrainError::Config {
                    path: PathBuf::from("[model]"),
                    reason: "no VAE: set model.from to a model directory with vae/, or describe a fresh one in [model.vae]".into(),
                })
            }
        };
        if cfg.task == Task::Vae {
            return Ok(Self { transformer: None, vae, vae_weights, text: None, tokenizer: None, train_text: false });
        }
        // Transformer.
        let (tc, tfiles): (WanTransformerConfig, Option<ComponentFiles>) = match (component(from, "transformer"), &cfg.model.transformer) {
            (Some(_), Some(_)) => return Err(clash("transformer")),
            (Some(dir), None) => {
                let (files, tc) = open(&dir)?;
                (tc, Some(files))
            }
            (None, Some(tc)) => (tc.clone(), None),
            (None, None) => {
                return Err(TrainError::Config {
                    path: PathBuf::from("[model]"),
                    reason: "no transformer: set model.from to a model directory with transformer/, or describe one in [model.transformer]".into(),
                })
            }
        };
        let bad = |reason: String| TrainError::Config { path: PathBuf::from("[model.transformer]"), reason };
        tc.validate().map_err(bad)?;
        let z = vae.config().z_dim;
        let want_in = if cfg.train.keyframes.is_empty() { z } else { 2 * z + 1 };
        if tc.in_channels != want_in || tc.out_channels() != z {
            return Err(bad(format!(
                "in_channels {} / out_channels {} do not fit the VAE's {z} latent channels (need in {want_in}{}, out {z})",
                tc.in_channels,
                tc.out_channels(),
                if cfg.train.keyframes.is_empty() { "" } else { " = 2·z + 1 with keyframes" }
            )));
        }
        if cfg.train.first_frame_share > 0.0 && tc.patch_size[0] != 1 {
            return Err(bad(format!(
                "train.first_frame_share needs a temporal patch size of 1 (this one patches {} latent frames together, so the first cannot be shown alone)",
                tc.patch_size[0]
            )));
        }
        let tmap = VarMap::new();
        let transformer = WanTransformer3DModel::new(&tc, vars(&tmap, cfg.seed, "transformer", tfiles.as_ref())?)
            .map_err(|e| weights_error(tfiles.as_ref().map_or(Path::new("[model.transformer]"), |f| &f.dir), e))?;
        // Tokenizer and text encoder.
        // A diffusers tokenizer folder has tokenizer.json (and tokenizer_config.json), no config.json.
        let tokenizer = match (from.map(|f| f.join("tokenizer").join(TOKENIZER_FILE)).filter(|p| p.is_file()), tokenizer) {
            (Some(path), _) => TextTokenizer::from_file(&path)?,
            (None, Some(t)) => t,
            (None, None) => return Err(TrainError::Config { path: PathBuf::from("[model]"), reason: "no tokenizer (model.from has no tokenizer/)".into() }),
        };
        let (text, default_train) = match (component(from, "text_encoder"), &cfg.model.text_encoder) {
            (Some(_), Some(_)) => return Err(clash("text_encoder")),
            (Some(dir), None) => {
                let files = component_files(&dir)?;
                if files.config["model_type"] == "reel-text" {
                    let rc: ReelTextConfig = parse(&files)?;
                    let map = VarMap::new();
                    let model = ReelTextEncoder::new(&rc, vars(&map, cfg.seed, "text_encoder", Some(&files))?).map_err(|e| weights_error(&dir, e))?;
                    (Text::Reel { model, map }, false)
                } else {
                    (Text::Other { model: reel_models::load_text_encoder(&dir, DType::F32, &dev)?, dir }, false)
                }
            }
            (None, Some(rc)) => {
                let rc = ReelTextConfig { vocab_size: tokenizer.vocab_size(), max_position_embeddings: rc.max_position_embeddings.max(cfg.model.max_text_len), ..rc.clone() };
                let map = VarMap::new();
                let model = ReelTextEncoder::new(&rc, vars(&map, cfg.seed, "text_encoder", None)?)?;
                (Text::Reel { model, map }, true)
            }
            (None, None) => {
                return Err(TrainError::Config {
                    path: PathBuf::from("[model]"),
                    reason: "no text encoder: set model.from to a model directory with text_encoder/, or describe a fresh one in [model.text_encoder]".into(),
                })
            }
        };
        let train_text = cfg.model.train_text_encoder.unwrap_or(default_train);
        if train_text && matches!(text, Text::Other { .. }) {
            return Err(TrainError::Config { path: PathBuf::from("[model]"), reason: "train_text_encoder: only Reel's own reel-text encoder can be trained".into() });
        }
        if text.encoder().hidden_size() != tc.text_dim {
            return Err(bad(format!("text_dim {} differs from the text encoder's hidden size {}", tc.text_dim, text.encoder().hidden_size())));
        }
        Ok(Self { transformer: Some((transformer, tmap)), vae, vae_weights, text: Some(text), tokenizer: Some(tokenizer), train_text })
    }

    /// Every variable, prefixed by component (`transformer.`, `text_encoder.`, `vae.`), sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        let mut add = |prefix: &str, map: &VarMap| {
            for (k, v) in map.data().lock().expect("varmap lock").iter() {
                out.push((format!("{prefix}.{k}"), v.clone()));
            }
        };
        if let Some((_, map)) = &self.transformer {
            add("transformer", map);
        }
        if let Some(Text::Reel { map, .. }) = &self.text {
            add("text_encoder", map);
        }
        if let Weights::Vars(map) = &self.vae_weights {
            add("vae", map);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The variables that may train in this task (before freeze patterns).
    pub fn trainable_prefixes(&self) -> Vec<&'static str> {
        match &self.transformer {
            None => vec!["vae."],
            Some(_) if self.train_text => vec!["transformer.", "text_encoder."],
            Some(_) => vec!["transformer."],
        }
    }

    /// Current weights of every variable (prefixed names).
    pub fn weights(&self) -> Result<HashMap<String, Tensor>> {
        self.named_vars().into_iter().map(|(k, v)| Ok((k, v.as_tensor().copy()?))).collect()
    }

    /// Sets variables from prefixed weights (a checkpoint).
    pub fn set_weights(&self, weights: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.named_vars() {
            let t = weights.get(&name).ok_or_else(|| TrainError::Checkpoint { path: PathBuf::new(), reason: format!("no weights for '{name}'") })?;
            var.set(t)?;
        }
        Ok(())
    }

    /// Writes a diffusers-layout model directory from `weights` (prefixed names; the current
    /// weights or the EMA's). Frozen components loaded from folders are copied.
    pub fn export(&self, cfg: &RunConfig, weights: &HashMap<String, Tensor>, out: &Path) -> Result<()> {
        let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
        let tmp = out.with_file_name(format!(".{name}.reel-tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
        }
        let result = self.write_export(cfg, weights, &tmp).and_then(|()| {
            if out.exists() {
                std::fs::remove_dir_all(out).map_err(TrainError::io(out))?;
            }
            std::fs::rename(&tmp, out).map_err(TrainError::io(out))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_export(&self, cfg: &RunConfig, weights: &HashMap<String, Tensor>, dir: &Path) -> Result<()> {
        let write_json = |path: PathBuf, value: &serde_json::Value| -> Result<()> {
            std::fs::create_dir_all(path.parent().expect("in a folder")).map_err(TrainError::io(&path))?;
            std::fs::write(&path, serde_json::to_string_pretty(value).expect("json")).map_err(TrainError::io(&path))
        };
        let section = |prefix: &str| -> HashMap<String, Tensor> {
            weights.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone()))).collect()
        };
        let save = |tensors: HashMap<String, Tensor>, path: PathBuf| -> Result<()> {
            candle_core::safetensors::save(&tensors, &path).map_err(|e| TrainError::Checkpoint { path, reason: e.to_string() })
        };
        let with_class = |v: serde_json::Value, class: &str| {
            let mut v = v;
            v["_class_name"] = json!(class);
            v["_diffusers_version"] = json!("0.33.0");
            v
        };
        let mut index = json!({ "_class_name": "WanPipeline", "_diffusers_version": "0.33.0", "vae": ["diffusers", "AutoencoderKLWan"] });
        match &self.vae_weights {
            Weights::Vars(_) => {
                write_json(dir.join("vae/config.json"), &with_class(serde_json::to_value(self.vae.config()).expect("json"), "AutoencoderKLWan"))?;
                save(section("vae."), dir.join("vae/diffusion_pytorch_model.safetensors"))?;
            }
            Weights::Dir(src) => copy_dir(src, &dir.join("vae"))?,
        }
        if let Some((t, _)) = &self.transformer {
            write_json(dir.join("transformer/config.json"), &with_class(serde_json::to_value(t.config()).expect("json"), "WanTransformer3DModel"))?;
            save(section("transformer."), dir.join("transformer/diffusion_pytorch_model.safetensors"))?;
            index["transformer"] = json!(["diffusers", "WanTransformer3DModel"]);
            match self.text.as_ref().expect("a transformer run has a text encoder") {
                Text::Reel { model, .. } => {
                    write_json(dir.join("text_encoder/config.json"), &serde_json::to_value(model.config()).expect("json"))?;
                    save(section("text_encoder."), dir.join("text_encoder/model.safetensors"))?;
                    index["text_encoder"] = json!(["reel", "ReelTextEncoder"]);
                }
                Text::Other { dir: src, .. } => {
                    copy_dir(src, &dir.join("text_encoder"))?;
                    index["text_encoder"] = json!(["transformers", "UMT5EncoderModel"]);
                }
            }
            let tok = dir.join("tokenizer").join(TOKENIZER_FILE);
            std::fs::create_dir_all(tok.parent().expect("folder")).map_err(TrainError::io(&tok))?;
            self.tokenizer.as_ref().expect("a transformer run has a tokenizer").save(&tok)?;
            write_json(dir.join("tokenizer/tokenizer_config.json"), &json!({ "model_max_length": cfg.model.max_text_len }))?;
            index["tokenizer"] = json!(["transformers", "PreTrainedTokenizerFast"]);
            let scheduler = scheduler_config(cfg);
            index["scheduler"] = json!(["diffusers", scheduler["_class_name"].clone()]);
            index["reel"] = default_request(cfg);
            write_json(dir.join("scheduler/scheduler_config.json"), &scheduler)?;
        }
        write_json(dir.join("model_index.json"), &index)
    }
}

/// The request a model exported from this run makes by default (`model_index.json`'s
/// `"reel"`, read by `reel generate`): its first bucket's size and frames, the lowest rate
/// of its frame-rate set, and its validation sampling — with a first-frame pass of as many
/// steps when the run trained first-frame conditioning.
fn default_request(cfg: &RunConfig) -> serde_json::Value {
    let bucket = cfg.data.buckets.first();
    let fps = cfg.data.fps.iter().copied().fold(f64::INFINITY, f64::min);
    let first_frame_steps = if cfg.train.first_frame_share > 0.0 { cfg.validation.steps } else { 0 };
    json!({
        "width": bucket.map_or(64, |b| b.width),
        "height": bucket.map_or(64, |b| b.height),
        "frames": bucket.map_or(17, |b| b.frames),
        "fps": if fps.is_finite() { fps } else { cfg.data.shapes_fps },
        "steps": cfg.validation.steps,
        "guidance": cfg.validation.guidance,
        "first_frame_steps": first_frame_steps,
    })
}

/// The sampler of a run: `model.scheduler`, or flow-matching Euler with shift 3.
pub fn scheduler_config(cfg: &RunConfig) -> serde_json::Value {
    cfg.model.scheduler.clone().unwrap_or_else(|| json!({ "_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0 }))
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(TrainError::io(dst))?;
    for entry in std::fs::read_dir(src).map_err(TrainError::io(src))? {
        let path = entry.map_err(TrainError::io(src))?.path();
        if path.is_file() {
            std::fs::copy(&path, dst.join(path.file_name().expect("a file"))).map_err(TrainError::io(&path))?;
        }
    }
    Ok(())
}
