//! The run config: one TOML file holds everything a run needs (docs/training.md lists every key).
//!
//! Unknown keys anywhere (nested model configs included) are errors, so a typo cannot
//! silently fall back to a default. Relative paths are relative to the config file.

use std::path::{Path, PathBuf};

use reel_models::text::reel_text::ReelTextConfig;
use reel_models::wan::{WanTransformerConfig, WanVaeConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::schedule::Decay;

/// What a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// The video transformer, by flow matching on VAE latents.
    Transformer,
    /// The VAE, by reconstruction + KL.
    Vae,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub task: Task,
    #[serde(default)]
    pub seed: u64,
    pub model: ModelConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    pub train: TrainConfig,
    /// CogVideo-style stages run one after another (e.g. images, then video); without
    /// stages the run is one stage of `train.steps`.
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub validation: ValidationConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A diffusers-layout model directory to start from: whichever of `transformer/`,
    /// `vae/`, `text_encoder/`, `tokenizer/` it has are loaded.
    pub from: Option<PathBuf>,
    /// A fresh transformer (when `from` has none).
    pub transformer: Option<WanTransformerConfig>,
    /// A fresh VAE (when `from` has none).
    pub vae: Option<WanVaeConfig>,
    /// A fresh `reel-text` encoder (its `vocab_size` is set from the tokenizer).
    pub text_encoder: Option<ReelTextConfig>,
    /// Train the text encoder too (default: yes for a fresh one, no for a loaded one).
    pub train_text_encoder: Option<bool>,
    /// Tokens per caption.
    #[serde(default = "default_text_len")]
    pub max_text_len: usize,
    /// Sampler written into exported models and used for validation: `scheduler_config.json` keys.
    pub scheduler: Option<serde_json::Value>,
}

fn default_text_len() -> usize {
    32
}

/// Where examples come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Shapes World, rendered on the fly.
    Shapes,
    /// A folder of videos with captions (manifest.jsonl / .csv, or a .txt beside each video).
    Videos,
    /// A folder of images with captions (for an image stage).
    Images,
    /// A latent cache written by `reel data cache`.
    Cache,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: SourceKind,
    /// Folder of the videos, images or cache.
    pub path: Option<PathBuf>,
    /// Manifest (JSONL with `file`/`path` and `caption`, or CSV with a `path,caption` header);
    /// default: `manifest.jsonl` or `manifest.csv` in `path`, else a `.txt` beside each file.
    pub manifest: Option<PathBuf>,
    /// Shapes World split.
    #[serde(default = "default_split")]
    pub split: reel_data::Split,
    /// Shapes World seed (which clips exist).
    #[serde(default)]
    pub shapes_seed: u64,
    /// Length of a Shapes World clip before temporal sampling: frames at `shapes_fps`.
    #[serde(default = "default_shapes_frames")]
    pub shapes_frames: u32,
    #[serde(default = "default_shapes_fps")]
    pub shapes_fps: f64,
    /// Frame-rate set (CogVideo): each clip is sampled at the lowest of these that still
    /// yields the bucket's length; the chosen rate conditions the model. Empty: native rate.
    #[serde(default)]
    pub fps: Vec<f64>,
    /// Probability of a horizontal flip (which also swaps left and right in the caption).
    #[serde(default)]
    pub flip: f64,
    /// Shapes World: share of clips drawn from the spec's scoring case (one object, static
    /// camera, flat style, neutral mood) rather than from every kind of scene; which clips is
    /// fixed by `shapes_seed` and the clip's index.
    #[serde(default)]
    pub scoring_share: f64,
    /// Brightness/contrast/saturation jitter amplitude (0.05 = ±5%); hue is never changed.
    #[serde(default)]
    pub color_jitter: f64,
    /// Random (true) or centre (false) spatial and temporal crops.
    #[serde(default = "yes")]
    pub random_crop: bool,
    /// Batches prepared ahead by the background loader.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    pub buckets: Vec<Bucket>,
}

fn default_split() -> reel_data::Split {
    reel_data::Split::Train
}
fn default_shapes_frames() -> u32 {
    17
}
fn default_shapes_fps() -> f64 {
    8.0
}
fn yes() -> bool {
    true
}
fn default_prefetch() -> usize {
    4
}

/// One shape of batch: resolution × length (× aspect ratio), with its own batch size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// Examples per rank per micro-batch.
    pub batch_size: usize,
    /// Relative share of batches (with video folders: times the number of fitting videos).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl Bucket {
    pub fn aspect(&self) -> f64 {
        self.width as f64 / self.height as f64
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01, grad_clip: 1.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub warmup_steps: u64,
    pub decay: Decay,
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { warmup_steps: 0, decay: Decay::Cosine, min_lr: 0.0 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconLoss {
    L1,
    Mse,
}

/// Which pixels a VAE's reconstruction loss weighs as foreground (`train.foreground_of`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForegroundOf {
    /// Where the target clip has an object.
    #[default]
    Target,
    /// Where the target has an object or the reconstruction draws one.
    Either,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps (without stages).
    #[serde(default)]
    pub steps: u64,
    #[serde(default = "one_u")]
    pub grad_accum: usize,
    /// Only `f32` on the CPU.
    #[serde(default = "default_precision")]
    pub precision: String,
    /// EMA decay of the weights (absent: no EMA).
    pub ema_decay: Option<f64>,
    /// Parameter-name patterns (`*` matches anything) that do not train.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Share of captions replaced by the empty prompt (for classifier-free guidance).
    #[serde(default = "default_dropout")]
    pub condition_dropout: f64,
    /// Weight of a second term in the transformer's loss: the mean square of the error's
    /// change from one latent frame to the next. 0 (the default) is plain flow matching; a
    /// positive weight makes errors that vary over time — motion — cost more than errors
    /// every frame shares (colour, background).
    #[serde(default)]
    pub temporal_weight: f64,
    /// Contrastive flow matching (Stoica et al., 2025): subtracts this weight times the
    /// squared distance between each clip's prediction and another clip's target (the next
    /// in the batch), so that predictions that ignore the caption — the same whatever the
    /// clip — cost more. 0 (the default) is plain flow matching; the paper uses 0.05.
    #[serde(default)]
    pub contrastive_weight: f64,
    /// Logit-normal timestep sampling: `σ = shift(sigmoid(mean + std·n))`.
    #[serde(default)]
    pub timestep_mean: f64,
    #[serde(default = "one")]
    pub timestep_std: f64,
    #[serde(default = "one")]
    pub timestep_shift: f64,
    /// Keyframe conditioning (an interpolation model): these latent frames (negative counts
    /// from the end) are given to the model, concatenated to its input with a mask channel;
    /// the transformer's `in_channels` must be `2·z + 1`.
    #[serde(default)]
    pub keyframes: Vec<i64>,
    /// First-frame conditioning (Wan2.2 TI2V's recipe, with per-frame timesteps): the share
    /// of clips whose first latent frame is shown clean, at timestep 0, and left out of the
    /// loss, while the rest of the clip is noised as usual. The model learns to carry on a
    /// given first frame — where the object is — in the way the caption says, which is what
    /// a motion word is worth; `reel.first_frame` generation (docs/models.md) uses it.
    /// 0 (the default) trains plain text to video.
    #[serde(default)]
    pub first_frame_share: f64,
    /// VAE training: reconstruction loss and the KL weight.
    #[serde(default = "default_recon")]
    pub recon_loss: ReconLoss,
    #[serde(default = "default_kl")]
    pub kl_weight: f64,
    /// How much more a pixel far from its frame's background counts in the loss (1: all
    /// pixels alike): the VAE's reconstruction loss (RGB pixels) or the transformer's flow-
    /// matching loss (latent pixels of the clean latents). Small objects on flat backgrounds are
    /// a few percent of the pixels; unweighted, a young VAE's best answer is the background
    /// alone, and what a transformer gains from an object's motion word is a rounding error
    /// beside the background every caption of a theme shares.
    #[serde(default = "one")]
    pub foreground_weight: f64,
    /// VAE training: which pixels get `foreground_weight`. `target` (the default): those where
    /// the clip has an object. `either`: those too where the reconstruction draws one, so a
    /// decoder is not let off painting an object where it was a few frames ago (trails) or a
    /// rim it never had, as it is when only the target's objects weigh more.
    #[serde(default)]
    pub foreground_of: ForegroundOf,
    /// VAE training: weight of an L1 loss on the reconstruction error's horizontal and vertical
    /// finite differences (`|∂(x̂ − x)|`): pixel losses forgive blurred edges, this does not.
    #[serde(default)]
    pub edge_weight: f64,
}

fn one_u() -> usize {
    1
}
fn default_precision() -> String {
    "f32".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_recon() -> ReconLoss {
    ReconLoss::L1
}
fn default_kl() -> f64 {
    1e-6
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    pub steps: u64,
    /// Buckets of this stage (default: `data.buckets`); `frames = 1` makes an image stage.
    pub buckets: Option<Vec<Bucket>>,
    /// Freeze patterns of this stage (default: `train.freeze`).
    pub freeze: Option<Vec<String>>,
    /// Learning rate of this stage (default: `optimizer.lr`).
    pub lr: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Steps between checkpoints (a checkpoint is also written at the end and on Ctrl-C).
    pub every: u64,
    /// How many checkpoints to keep.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every: 500, keep: 3 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Steps between redraws of `metrics.png`.
    pub plot_every: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { plot_every: 100 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Steps between validation renders (0 = only at the end, if there are prompts).
    pub every: u64,
    /// Fixed prompts (transformer runs); a VAE run reconstructs held-out clips instead.
    pub prompts: Vec<String>,
    pub steps: usize,
    pub guidance: f64,
    pub seed: u64,
    /// Clips reconstructed by a VAE run's validation.
    pub clips: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self { every: 0, prompts: Vec::new(), steps: 20, guidance: 4.0, seed: 0, clips: 2 }
    }
}

/// One stage after defaults are filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: String,
    /// First global step of the stage (1-based) and its number of steps.
    pub first_step: u64,
    pub steps: u64,
    pub buckets: Vec<Bucket>,
    pub freeze: Vec<String>,
    pub lr: f64,
}

impl RunConfig {
    /// Parses and checks a config; relative paths are resolved against `base` (the config's folder).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::Config { path: path.to_path_buf(), reason };
        let mut unknown = Vec::new();
        let de = toml::Deserializer::parse(text).map_err(|e| bad(e.to_string()))?;
        let mut cfg: RunConfig = serde_ignored::deserialize(de, |p| unknown.push(p.to_string().replace(".?", ""))).map_err(|e| bad(e.to_string()))?;
        if !unknown.is_empty() {
            return Err(bad(format!("unknown key{} {}", if unknown.len() > 1 { "s" } else { "" }, unknown.join(", "))));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut() {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        };
        resolve(&mut cfg.model.from);
        resolve(&mut cfg.data.path);
        resolve(&mut cfg.data.manifest);
        cfg.check().map_err(bad)?;
        Ok(cfg)
    }

    /// This config with its paths made canonical where they exist, so that two configs
    /// naming one folder by different routes (`configs/a/../../runs/x`, `runs/x`) compare equal.
    pub fn with_canonical_paths(&self) -> Self {
        let mut cfg = self.clone();
        for p in [&mut cfg.model.from, &mut cfg.data.path, &mut cfg.data.manifest].into_iter().flatten() {
            if let Ok(c) = p.canonicalize() {
                *p = c;
            }
        }
        cfg
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config { path: path.to_path_buf(), reason: format!("cannot read it: {e}") })?;
        Self::from_toml(&text, path)
    }

    /// The stages with defaults filled in.
    pub fn stages(&self) -> Vec<Stage> {
        let base = |name: &str, steps| StageConfig { name: name.into(), steps, buckets: None, freeze: None, lr: None };
        let list = if self.stages.is_empty() { vec![base("main", self.train.steps)] } else { self.stages.clone() };
        let mut first = 1;
        list.into_iter()
            .map(|s| {
                let stage = Stage {
                    name: s.name,
                    first_step: first,
                    steps: s.steps,
                    buckets: s.buckets.unwrap_or_else(|| self.data.buckets.clone()),
                    freeze: s.freeze.unwrap_or_else(|| self.train.freeze.clone()),
                    lr: s.lr.unwrap_or(self.optimizer.lr),
                };
                first += s.steps;
                stage
            })
            .collect()
    }

    pub fn total_steps(&self) -> u64 {
        self.stages().iter().map(|s| s.steps).sum()
    }

    /// Checks what does not need the models: ranges, sizes, sources.
    fn check(&self) -> std::result::Result<(), String> {
        if self.train.precision != "f32" {
            return Err(format!(
                "train.precision '{}': this build trains in f32 on the CPU (bf16/f16 need a CUDA build)",
                self.train.precision
            ));
        }
        if self.train.grad_accum == 0 {
            return Err("train.grad_accum must be at least 1".into());
        }
        if !self.stages.is_empty() && self.train.steps != 0 {
            return Err("set either train.steps or [[stages]] with their own steps, not both".into());
        }
        if self.total_steps() == 0 {
            return Err("nothing to train: train.steps (or the stages' steps) is 0".into());
        }
        let o = &self.optimizer;
        if !(o.lr > 0.0 && o.lr.is_finite()) || o.eps <= 0.0 || o.weight_decay < 0.0 || o.grad_clip < 0.0 {
            return Err("optimizer: lr and eps must be positive, weight_decay and grad_clip not negative".into());
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(format!("optimizer.betas {:?}: each must be in [0, 1)", o.betas));
        }
        if let Some(d) = self.train.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return Err(format!("train.ema_decay {d}: must be in [0, 1)"));
            }
        }
        if !(self.train.edge_weight >= 0.0 && self.train.edge_weight.is_finite()) {
            return Err(format!("train.edge_weight {}: must be 0 (off) or positive", self.train.edge_weight));
        }
        if !(self.train.foreground_weight >= 1.0 && self.train.foreground_weight.is_finite()) {
            return Err(format!("train.foreground_weight {}: must be at least 1 (1 weighs all pixels alike)", self.train.foreground_weight));
        }
        if self.train.foreground_of == ForegroundOf::Either {
            if self.task != Task::Vae {
                return Err("train.foreground_of \"either\" weighs a VAE's reconstructions; a transformer run takes \"target\" (the default)".into());
            }
            if self.train.foreground_weight == 1.0 {
                return Err("train.foreground_of \"either\" with foreground_weight 1 weighs nothing more; set foreground_weight above 1".into());
            }
        }
        for (name, p) in [
            ("train.condition_dropout", self.train.condition_dropout),
            ("data.flip", self.data.flip),
            ("data.scoring_share", self.data.scoring_share),
            ("train.first_frame_share", self.train.first_frame_share),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} {p}: a probability in [0, 1]"));
            }
        }
        if !(0.0..0.5).contains(&self.data.color_jitter) {
            return Err(format!("data.color_jitter {}: must be in [0, 0.5)", self.data.color_jitter));
        }
        if !(self.train.temporal_weight >= 0.0 && self.train.temporal_weight.is_finite()) {
            return Err(format!("train.temporal_weight {}: must be 0 (off) or positive", self.train.temporal_weight));
        }
        if !(0.0..1.0).contains(&self.train.contrastive_weight) {
            return Err(format!("train.contrastive_weight {}: must be in [0, 1) (0 is off; above 1 the loss has no minimum)", self.train.contrastive_weight));
        }
        if self.train.first_frame_share > 0.0 && self.train.temporal_weight > 0.0 {
            return Err("train.first_frame_share and train.temporal_weight cannot both be on: the temporal term would count the left-out first frame's jump; set one to 0".into());
        }
        if self.train.timestep_std <= 0.0 || self.train.timestep_shift <= 0.0 {
            return Err("train.timestep_std and train.timestep_shift must be positive".into());
        }
        if let Some(f) = self.data.fps.iter().find(|f| !(**f > 0.0 && f.is_finite())) {
            return Err(format!("data.fps contains {f}: frame rates must be positive"));
        }
        if self.data.prefetch == 0 {
            return Err("data.prefetch must be at least 1".into());
        }
        for stage in self.stages() {
            if stage.buckets.is_empty() {
                return Err(format!("stage '{}' has no buckets: add [[data.buckets]] (width, height, frames, batch_size)", stage.name));
            }
            for b in &stage.buckets {
                reel_media::check_size(b.width, b.height).map_err(|e| format!("bucket {}x{}: {e}", b.width, b.height))?;
                if b.frames == 0 || b.batch_size == 0 || b.weight.is_nan() || b.weight <= 0.0 {
                    return Err(format!("bucket {}x{}x{}: frames, batch_size and weight must be positive", b.width, b.height, b.frames));
                }
                if self.data.source == SourceKind::Images && b.frames != 1 {
                    return Err(format!("bucket with {} frames: an image source only fills 1-frame buckets", b.frames));
                }
            }
        }
        let needs_path = matches!(self.data.source, SourceKind::Videos | SourceKind::Images | SourceKind::Cache);
        if needs_path && self.data.path.is_none() {
            return Err(format!("data.source = \"{:?}\" needs data.path (a folder)", self.data.source).to_lowercase());
        }
        if self.data.source == SourceKind::Shapes && (self.data.shapes_frames == 0 || self.data.shapes_fps.is_nan() || self.data.shapes_fps <= 0.0) {
            return Err("data.shapes_frames and data.shapes_fps must be positive".into());
        }
        if self.task == Task::Vae && self.data.source == SourceKind::Cache {
            return Err("a VAE run needs pixels: data.source = \"cache\" holds latents".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
task = "transformer"
[model]
[data]
source = "shapes"
[[data.buckets]]
width = 32
height = 32
frames = 5
batch_size = 2
[train]
steps = 10
"#;

    fn parse(text: &str) -> Result<RunConfig> {
        RunConfig::from_toml(text, Path::new("/tmp/x/run.toml"))
    }

    #[test]
    fn a_minimal_config_fills_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.total_steps(), 10);
        assert_eq!(c.optimizer.lr, 1e-4);
        assert_eq!(c.model.max_text_len, 32);
        assert_eq!(c.stages()[0].first_step, 1);
    }

    #[test]
    fn unknown_keys_are_errors_even_inside_model_configs() {
        let err = parse(&MINIMAL.replace("[train]", "[train]\nlearning_rate = 3")).unwrap_err().to_string();
        assert!(err.contains("learning_rate"), "{err}");
        let err = parse(&MINIMAL.replace("[model]", "[model]\n[model.transformer]\nnum_layerz = 2")).unwrap_err().to_string();
        assert!(err.contains("model.transformer.num_layerz"), "{err}");
    }

    #[test]
    fn impossible_values_are_named() {
        for (from, to, want) in [
            ("steps = 10", "steps = 0", "nothing to train"),
            ("batch_size = 2", "batch_size = 0", "batch_size"),
            ("width = 32", "width = 33", "33"),
            ("[train]", "[train]\nprecision = \"bf16\"", "bf16"),
            ("[train]", "[train]\ncondition_dropout = 1.5", "condition_dropout"),
            ("[train]", "[train]\ntemporal_weight = -1.0", "train.temporal_weight"),
            ("[train]", "[train]\ncontrastive_weight = 1.5", "train.contrastive_weight"),
            ("[train]", "[train]\nfirst_frame_share = 1.5", "train.first_frame_share"),
            ("[train]", "[train]\nfirst_frame_share = 0.5\ntemporal_weight = 1.0", "cannot both be on"),
            ("source = \"shapes\"", "source = \"shapes\"\nscoring_share = -0.1", "data.scoring_share"),
            ("source = \"shapes\"", "source = \"videos\"", "data.path"),
            ("[train]", "[train]\nforeground_of = \"either\"\nforeground_weight = 10.0", "a transformer run takes"),
            ("[train]", "[train]\nforeground_of = \"both\"", "foreground_of"),
        ] {
            let err = parse(&MINIMAL.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn foreground_of_either_is_for_vae_runs_that_weigh_foreground() {
        let vae = MINIMAL.replace("task = \"transformer\"", "task = \"vae\"");
        let c = parse(&vae.replace("[train]", "[train]\nforeground_of = \"either\"\nforeground_weight = 10.0")).unwrap();
        assert_eq!(c.train.foreground_of, ForegroundOf::Either);
        assert_eq!(parse(&vae).unwrap().train.foreground_of, ForegroundOf::Target, "the default");
        let err = parse(&vae.replace("[train]", "[train]\nforeground_of = \"either\"")).unwrap_err().to_string();
        assert!(err.contains("foreground_weight 1 weighs nothing more"), "{err}");
    }

    #[test]
    fn stages_run_back_to_back_and_paths_resolve() {
        let text = MINIMAL.replace("steps = 10", "")
            + "[[stages]]\nname = \"image\"\nsteps = 4\nbuckets = [{ width = 32, height = 32, frames = 1, batch_size = 8 }]\n"
            + "[[stages]]\nname = \"video\"\nsteps = 6\nfreeze = [\"text_encoder.*\"]\nlr = 1e-5\n";
        let text = text.replace("[data]", "[data]\npath = \"clips\"");
        let c = parse(&text).unwrap();
        let s = c.stages();
        assert_eq!((s[0].first_step, s[0].steps, s[0].buckets[0].frames), (1, 4, 1));
        assert_eq!((s[1].first_step, s[1].steps, s[1].buckets[0].frames, s[1].lr), (5, 6, 5, 1e-5));
        assert_eq!(s[1].freeze, vec!["text_encoder.*".to_string()]);
        assert_eq!(c.data.path.as_deref(), Some(Path::new("/tmp/x/clips")));
    }
}
