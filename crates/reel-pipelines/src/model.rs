//! A whole text-to-video model from a diffusers-layout folder: `transformer/`, `vae/`,
//! `text_encoder/`, `tokenizer/`, `scheduler/` and `model_index.json`, whose optional
//! `"reel"` object gives the model's default request (size, frames, fps, steps, guidance,
//! first-frame steps, negative prompt) — `reel train export` writes it.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use reel_models::planner::LayoutPlanner;
use reel_models::text::tokenizer::TextTokenizer;
use reel_models::text::TextEncoder;
use reel_models::wan::{AutoencoderKLWan, WanTransformer3DModel, WanTransformerConfig, WanVaeConfig};
use reel_models::ModelError;
use reel_schedulers::{FlowMatchEulerConfig, SchedulerConfig, UniPcConfig};
use serde::Deserialize;

use crate::request::{ModelSpec, Resolved, SchedulerKind};
use crate::{Components, Settings};

/// `model_index.json`'s `"reel"` object; every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    width: Option<u32>,
    height: Option<u32>,
    frames: Option<u32>,
    fps: Option<f64>,
    steps: Option<u32>,
    guidance: Option<f64>,
    first_frame_steps: Option<u32>,
    /// The default layout strength when the model has a planner (0.8 if unset).
    layout_strength: Option<f64>,
    /// Whether requests with a layout make its first frame first (false if unset).
    layout_first_frame: Option<bool>,
    /// The default layout guidance (0 if unset).
    layout_guidance: Option<f64>,
    /// The default layout erosion, pixels (0 if unset).
    layout_erosion: Option<f64>,
    /// The default round trips that refine a layout's outlines (0 if unset).
    layout_refine: Option<u32>,
    negative_prompt: Option<String>,
}

/// A loaded model.
pub struct Model {
    pub dir: PathBuf,
    pub transformer: WanTransformer3DModel,
    pub vae: AutoencoderKLWan,
    pub text_encoder: Box<dyn TextEncoder>,
    pub tokenizer: TextTokenizer,
    /// The layout planner (`planner/`), if the model has one.
    pub planner: Option<LayoutPlanner>,
    /// The scheduler the model ships with.
    pub scheduler: SchedulerConfig,
    pub max_text_len: usize,
    pub spec: ModelSpec,
}

fn invalid(path: &Path, what: &'static str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidFile { what, path: path.to_path_buf(), reason: reason.into() }
}

impl Model {
    /// Loads every component of `dir` (f32, CPU), with what [`read_spec`] read from its
    /// configs (requests are checked against that before any weight is read).
    pub fn load(dir: &Path, (spec, scheduler): (ModelSpec, SchedulerConfig)) -> Result<Self, ModelError> {
        let device = Device::Cpu;
        let transformer = reel_models::load_wan_transformer(dir, DType::F32, &device)?;
        let vae = reel_models::load_wan_vae(dir, DType::F32, &device)?;
        let text_encoder = reel_models::load_text_encoder(dir, DType::F32, &device)?;
        let planner = if has_planner(dir) { Some(reel_models::load_layout_planner(dir, DType::F32, &device)?) } else { None };
        let tokenizer_dir = dir.join("tokenizer");
        let tokenizer = TextTokenizer::from_file(&tokenizer_dir.join("tokenizer.json"))?;
        let max_text_len = match std::fs::read_to_string(tokenizer_dir.join("tokenizer_config.json")) {
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(&tokenizer_dir.join("tokenizer_config.json"), "tokenizer config", e.to_string()))?;
                v.get("model_max_length").and_then(|m| m.as_u64()).filter(|&m| m > 0 && m <= 4096).unwrap_or(512) as usize
            }
            Err(_) => 512,
        };
        if let Some(p) = planner.as_ref().filter(|p| p.config().vocab_size != tokenizer.vocab_size()) {
            return Err(invalid(
                &dir.join("planner/config.json"),
                "planner config",
                format!("vocab_size {} does not match the tokenizer's {} words; the planner reads the model's own tokens: train it again with `reel train planner {}`", p.config().vocab_size, tokenizer.vocab_size(), dir.display()),
            ));
        }
        Ok(Self { dir: dir.to_path_buf(), transformer, vae, text_encoder, tokenizer, planner, scheduler, max_text_len, spec })
    }

    /// The scheduler of `kind`, keeping the model's shift and training length.
    pub fn scheduler(&self, kind: SchedulerKind) -> SchedulerConfig {
        let (steps, shift) = match &self.scheduler {
            SchedulerConfig::FlowMatchEuler(c) => (c.num_train_timesteps, c.shift),
            SchedulerConfig::UniPc(c) => (c.num_train_timesteps, c.flow_shift),
        };
        match (kind, &self.scheduler) {
            (SchedulerKind::Euler, SchedulerConfig::FlowMatchEuler(_)) | (SchedulerKind::Unipc, SchedulerConfig::UniPc(_)) => self.scheduler.clone(),
            (SchedulerKind::Euler, _) => SchedulerConfig::FlowMatchEuler(FlowMatchEulerConfig { num_train_timesteps: steps, shift, ..Default::default() }),
            (SchedulerKind::Unipc, _) => SchedulerConfig::UniPc(UniPcConfig { num_train_timesteps: steps, flow_shift: shift, ..Default::default() }),
        }
    }

    /// The pipeline over this model with the request's sampler.
    pub fn components(&self, kind: SchedulerKind) -> Components<'_> {
        Components {
            transformer: &self.transformer,
            vae: &self.vae,
            text_encoder: self.text_encoder.as_ref(),
            tokenizer: &self.tokenizer,
            scheduler: self.scheduler(kind),
            max_text_len: self.max_text_len,
            planner: self.planner.as_ref(),
        }
    }

    /// Fits a checked request's prompt to this model's vocabulary: unknown words with a known
    /// synonym are replaced (noted in `notes`); returns the words still unknown.
    pub fn fit_vocabulary(&self, r: &mut Resolved) -> Vec<String> {
        let known = |w: &str| self.tokenizer.unknown_words(w).is_ok_and(|u| u.is_empty());
        let (prompt, replaced) = crate::synonyms::normalize(&r.prompt, known);
        if !replaced.is_empty() {
            let list: Vec<String> = replaced.iter().map(|(a, b)| format!("{a} → {b}")).collect();
            r.notes.push(format!("words outside the model's vocabulary replaced: {}", list.join(", ")));
            r.prompt = prompt;
        }
        self.unknown_words(&r.prompt)
    }

    /// The words of `prompt` this model's vocabulary lacks (empty for sub-word tokenizers,
    /// which have no unknown words in practice).
    pub fn unknown_words(&self, prompt: &str) -> Vec<String> {
        self.tokenizer.unknown_words(prompt).unwrap_or_default()
    }
}

/// Whether a model folder has a layout planner (`planner/config.json`).
pub fn has_planner(dir: &Path) -> bool {
    dir.join("planner/config.json").is_file()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| invalid(path, what, e.to_string()))
}

/// What a model folder makes by default and can make, and its scheduler, from its configs
/// alone (no weights read): requests are checked against it before anything loads.
pub fn read_spec(dir: &Path) -> Result<(ModelSpec, SchedulerConfig), ModelError> {
    let index: serde_json::Value = read_json(&dir.join("model_index.json"), "model index")?;
    let defaults: Defaults = match index.get("reel") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| invalid(&dir.join("model_index.json"), "model index", format!("\"reel\": {e}")))?,
        None => Defaults::default(),
    };
    let transformer: WanTransformerConfig = read_json(&dir.join("transformer/config.json"), "transformer config")?;
    let vae: WanVaeConfig = read_json(&dir.join("vae/config.json"), "vae config")?;
    vae.validate().map_err(ModelError::Config)?;
    let scheduler_path = dir.join("scheduler/scheduler_config.json");
    let scheduler = if scheduler_path.exists() {
        let text = std::fs::read_to_string(&scheduler_path).map_err(|source| ModelError::Io { path: scheduler_path.clone(), source })?;
        SchedulerConfig::from_json(&text).map_err(|e| invalid(&scheduler_path, "scheduler config", e.to_string()))?
    } else {
        SchedulerConfig::FlowMatchEuler(FlowMatchEulerConfig { shift: 3.0, ..Default::default() })
    };
    let [pt, ph, _] = transformer.patch_size;
    let planner = has_planner(dir);
    if planner {
        let config: reel_models::planner::LayoutPlannerConfig = read_json(&dir.join("planner/config.json"), "planner config")?;
        config.validate().map_err(|e| invalid(&dir.join("planner/config.json"), "planner config", e))?;
    }
    let unit = |key: &str, v: f64| match (0.0..=1.0).contains(&v) {
        true => Ok(v),
        false => Err(invalid(&dir.join("model_index.json"), "model index", format!("\"reel\": {key} {v} is outside 0–1"))),
    };
    let layout_strength = unit("layout_strength", if planner { defaults.layout_strength.unwrap_or(0.8) } else { 0.0 })?;
    let layout_guidance = unit("layout_guidance", defaults.layout_guidance.unwrap_or(0.0))?;
    let layout_erosion = defaults.layout_erosion.unwrap_or(0.0);
    let max_erosion = crate::request::MAX_LAYOUT_EROSION;
    if !(0.0..=max_erosion).contains(&layout_erosion) {
        return Err(invalid(&dir.join("model_index.json"), "model index", format!("\"reel\": layout_erosion {layout_erosion} is outside 0–{max_erosion}")));
    }
    let layout_refine = defaults.layout_refine.unwrap_or(0);
    let max_refine = crate::request::MAX_LAYOUT_REFINE;
    if layout_refine > max_refine {
        return Err(invalid(&dir.join("model_index.json"), "model index", format!("\"reel\": layout_refine {layout_refine} is outside 0–{max_refine}")));
    }
    let spec = ModelSpec {
        width: defaults.width.unwrap_or(64),
        height: defaults.height.unwrap_or(64),
        frames: defaults.frames.unwrap_or(17),
        fps: defaults.fps.unwrap_or(8.0),
        steps: defaults.steps.unwrap_or(30),
        guidance: defaults.guidance.unwrap_or(5.0),
        first_frame_steps: defaults.first_frame_steps.unwrap_or(0),
        layout_strength,
        layout_first_frame: planner && defaults.layout_first_frame.unwrap_or(false),
        layout_guidance: if planner { layout_guidance } else { 0.0 },
        layout_erosion: if planner { layout_erosion } else { 0.0 },
        layout_refine: if planner { layout_refine } else { 0 },
        planner,
        negative_prompt: defaults.negative_prompt.unwrap_or_default(),
        scheduler: match scheduler {
            SchedulerConfig::FlowMatchEuler(_) => SchedulerKind::Euler,
            SchedulerConfig::UniPc(_) => SchedulerKind::Unipc,
        },
        size_multiple: (vae.spatial_ratio() * ph) as u32,
        frame_multiple: (vae.temporal_ratio() * pt) as u32,
    };
    Ok((spec, scheduler))
}

/// The pipeline's settings for a checked request.
pub fn settings(r: &Resolved) -> Settings {
    Settings {
        width: r.width as usize,
        height: r.height as usize,
        frames: r.frames as usize,
        fps: r.fps,
        steps: r.steps as usize,
        guidance: r.guidance,
        first_frame_steps: r.first_frame_steps as usize,
        layout_strength: r.layout_strength,
        layout_first_frame: r.layout_first_frame,
        layout_guidance: r.layout_guidance,
        layout_erosion: r.layout_erosion,
        layout_refine: r.layout_refine as usize,
        seed: r.seed,
        negative_prompt: r.negative_prompt.clone(),
    }
}
