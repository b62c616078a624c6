//! The training loop shared by both tasks (docs/training.md): run directory, resume,
//! stages, gradient accumulation, data-parallel averaging, clipping, AdamW, EMA,
//! metrics, checkpoints and validation renders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var, D};
use reel_models::text::tokenizer::TextTokenizer;
use reel_models::wan::WanInput;
use reel_pipelines::{encode_prompts, frames_from_pixels, Components, Settings};
use reel_schedulers::noise;
use reel_schedulers::training::{add_noise, sample_logit_normal_sigmas, velocity_target};

use crate::checkpoint::{self, Checkpoint, TrainState};
use crate::config::{ForegroundOf, ReconLoss, RunConfig, SourceKind, Stage, Task, TrainConfig};
use crate::data::{Batch, Dataset, Loader, LoaderSpec, Payload};
use crate::dist::Communicator;
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::metrics::{self, MetricsLog, StepRecord};
use crate::models::{scheduler_config, Models, Text, Weights, TOKENIZER_FILE};
use crate::optim::{clip_grad_norm, AdamW};
use crate::schedule::LrSchedule;

/// The config exactly as given, and as resolved (absolute paths): what `--resume` and
/// `reel train export` read back.
pub const CONFIG_COPY: &str = "config.toml";
pub const CONFIG_RESOLVED: &str = "config.resolved.json";

const POSTERIOR_STREAM: u64 = 0x9057;
const NOISE_STREAM: u64 = 0x401e;
const SIGMA_STREAM: u64 = 0x5167;
const DROPOUT_STREAM: u64 = 0xd209;
const FIRST_FRAME_STREAM: u64 = 0xf1f0;

/// How a run is started.
#[derive(Clone, Debug)]
pub struct Options {
    pub out: PathBuf,
    pub resume: bool,
    /// Stop cleanly after this step (with a checkpoint).
    pub max_steps: Option<u64>,
}

/// How a run ended (Ctrl-C is `Err(TrainError::Interrupted)`).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Finished { step: u64, run: PathBuf },
    Stopped { step: u64, run: PathBuf },
}

/// What the trainer tells its caller (the CLI draws a progress bar from it).
pub trait Observer {
    fn start(&mut self, _total_steps: u64, _first_step: u64) {}
    fn step(&mut self, _record: &StepRecord, _total_steps: u64) {}
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything (tests, non-zero ranks).
pub struct Quiet;
impl Observer for Quiet {}

/// The mean square of an error's change from one latent frame to the next (`err`:
/// `[B, C, F, H, W]`); zero for a single frame. An error that is the same in every frame (a
/// wrong colour or background) adds nothing; one that changes over time (an object in the
/// wrong place in some frames: wrong motion) adds up to four times its mean square.
fn temporal_difference_mse(err: &Tensor) -> Result<Tensor> {
    let frames = err.dim(2)?;
    if frames < 2 {
        return Ok(err.zeros_like()?.mean_all()?);
    }
    let change = (err.narrow(2, 1, frames - 1)? - err.narrow(2, 0, frames - 1)?)?;
    Ok(change.sqr()?.mean_all()?)
}

/// The transformer's loss for predictions `pred` of velocity targets `target` of clean
/// latents `x0` (all `[B, C, F, H, W]`): the (foreground-weighted) mean square error, less
/// `contrastive_weight` times the same distance to the next clip's target, plus
/// `temporal_weight` times the error's frame-to-frame change. `keep` (`[B, 1, F, 1, 1]`, 0 or
/// 1) leaves out frames that were shown clean.
fn flow_matching_loss(pred: &Tensor, target: &Tensor, x0: &Tensor, keep: Option<&Tensor>, t: &TrainConfig) -> Result<Tensor> {
    let err = match keep {
        Some(k) => (pred - target)?.broadcast_mul(k)?,
        None => (pred - target)?,
    };
    let mut loss = foreground_mean(&err.sqr()?, x0, t.foreground_weight, ForegroundRamp::LATENTS)?;
    if t.contrastive_weight > 0.0 && pred.dim(0)? > 1 {
        let apart = foreground_mean(&(pred - roll_batch(target)?)?.sqr()?, x0, t.foreground_weight, ForegroundRamp::LATENTS)?;
        loss = (loss - (apart * t.contrastive_weight)?)?;
    }
    if t.temporal_weight > 0.0 {
        loss = (loss + (temporal_difference_mse(&err)? * t.temporal_weight)?)?;
    }
    Ok(loss)
}

/// `x` with its batch rotated by one: item `i` becomes item `i + 1`'s (the last the first's).
fn roll_batch(x: &Tensor) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    Tensor::cat(&[x.narrow(0, 1, b - 1)?, x.narrow(0, 0, 1)?], 0)
}

/// A VAE weight that shapes the latents: the encoder's and the quantising convolution's.
fn is_encoder_weight(name: &str) -> bool {
    name.starts_with("vae.encoder.") || name.starts_with("vae.quant_conv.")
}

fn keep_var(name: &str, prefixes: &[&str], freeze: &[String]) -> bool {
    prefixes.iter().any(|p| name.starts_with(p)) && !freeze.iter().any(|f| glob(f, name))
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Where the data continues after `done` steps: the stage of step `done + 1` and the
/// micro-batches of that stage already consumed (every step consumes `accum` of them).
/// After the last step: the last stage, fully consumed.
fn data_position(stages: &[Stage], done: u64, accum: usize) -> (usize, u64) {
    let i = stages.iter().position(|s| done < s.first_step - 1 + s.steps).unwrap_or(stages.len() - 1);
    (i, (done - (stages[i].first_step - 1)) * accum as u64)
}

/// Whether `new` is `saved` with more steps in its last stage (or more `train.steps` without
/// stages) and nothing else changed: the one change a run accepts on `--resume`. Paths
/// compare by where they lead, so a config that moved (or the run's own copy) still resumes.
pub fn only_lengthens(saved: &RunConfig, new: &RunConfig) -> bool {
    let new = &new.with_canonical_paths();
    let mut lengthened = saved.with_canonical_paths();
    match (lengthened.stages.last_mut(), new.stages.last()) {
        (Some(a), Some(b)) if b.steps >= a.steps => a.steps = b.steps,
        (None, None) if new.train.steps >= saved.train.steps => lengthened.train.steps = new.train.steps,
        _ => return false,
    }
    lengthened == *new
}

/// Where a pixel stops being background, for [`foreground_weights`]: its distance from its
/// frame's mean (Euclidean over channels) ramps the weight from 1 at `low` to full at `high`.
#[derive(Clone, Copy, Debug)]
pub struct ForegroundRamp {
    pub low: f64,
    pub high: f64,
}

impl ForegroundRamp {
    /// RGB pixels in [-1, 1] units: faint grid lines, vignettes and noise stay below 0.25;
    /// Shapes World draws objects at least 0.78 from their background.
    pub const PIXELS: Self = Self { low: 0.25, high: 0.6 };
    /// Normalised latents (per-channel mean 0, std 1): on the shapes-v1 VAE's latents of
    /// plain Shapes World clips 90% of latent pixels lie within 3.8 of their frame's mean
    /// (backgrounds and their grid lines) and an object's strongest latent pixel a median
    /// 6.2 from it (measured on a cache shard, docs/training.md).
    pub const LATENTS: Self = Self { low: 3.5, high: 6.0 };
}

/// Per-pixel loss weights `[B, 1, T, H, W]` for `x` `[B, C, T, H, W]`: 1 on the background,
/// rising to `weight` on pixels far from it. A frame's background is its channels' mean
/// (objects are a small share of the pixels).
pub fn foreground_weights(x: &Tensor, weight: f64, ramp: ForegroundRamp) -> candle_core::Result<Tensor> {
    weights_against(x, x, weight, ramp)
}

/// [`foreground_weights`] of the pixels of `y`, each frame measured against the background of
/// the same frame of `x` (both `[B, C, T, H, W]`).
fn weights_against(y: &Tensor, x: &Tensor, weight: f64, ramp: ForegroundRamp) -> candle_core::Result<Tensor> {
    let ForegroundRamp { low, high } = ramp;
    let bg = x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?;
    let dist = y.broadcast_sub(&bg)?.sqr()?.sum_keepdim(1)?.sqrt()?;
    let w = dist.affine(1.0 / (high - low), -low / (high - low))?.clamp(0f32, 1f32)?;
    Ok(w.affine(weight - 1.0, 1.0)?.detach())
}

/// Weights for a reconstruction `y` of `x`: a pixel counts as foreground where the target has
/// an object *or* the reconstruction draws one, so a ghost (an object left where it was, a rim
/// it never had) costs what a missed object costs.
pub fn either_foreground_weights(y: &Tensor, x: &Tensor, weight: f64, ramp: ForegroundRamp) -> candle_core::Result<Tensor> {
    foreground_weights(x, weight, ramp)?.maximum(&weights_against(y, x, weight, ramp)?)
}

/// `Σ w·e / Σ w` of a per-element loss `e` `[B, C, T, H, W]` with per-pixel weights `w`
/// `[B, 1, T, H, W]`; the plain mean when `weight` is 1.
fn foreground_mean(e: &Tensor, x: &Tensor, weight: f64, ramp: ForegroundRamp) -> candle_core::Result<Tensor> {
    if weight == 1.0 {
        return e.mean_all();
    }
    weighted_mean(e, &foreground_weights(x, weight, ramp)?)
}

fn weighted_mean(e: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    e.broadcast_mul(w)?.mean_all()? / w.mean_all()?.to_scalar::<f32>()? as f64
}

/// `mean |Δ_w e| + mean |Δ_h e|` of an error `e` `[B, C, T, H, W]`: the L1 distance between the
/// horizontal and vertical finite differences of a reconstruction and of its target.
pub fn edge_l1(err: &Tensor) -> candle_core::Result<Tensor> {
    let (h, w) = (err.dim(3)?, err.dim(4)?);
    let mut total = Tensor::zeros((), err.dtype(), err.device())?;
    if w > 1 {
        total = (total + (err.narrow(4, 1, w - 1)? - err.narrow(4, 0, w - 1)?)?.abs()?.mean_all()?)?;
    }
    if h > 1 {
        total = (total + (err.narrow(3, 1, h - 1)? - err.narrow(3, 0, h - 1)?)?.abs()?.mean_all()?)?;
    }
    Ok(total)
}

/// Per-example standard normal values keyed by sample id.
fn per_sample_noise(seed: u64, stream: u64, ids: &[u64], like: &Tensor) -> Result<Tensor> {
    let per = like.elem_count() / ids.len();
    let mut v = Vec::with_capacity(like.elem_count());
    for &id in ids {
        v.extend(noise::gaussian(noise::item_key(seed, stream, id), 0, per));
    }
    Ok(Tensor::from_vec(v, like.shape(), like.device())?)
}

struct Run<'a> {
    cfg: RunConfig,
    dir: PathBuf,
    comm: &'a dyn Communicator,
    models: Models,
    dataset: Arc<Dataset>,
    opt: AdamW,
    ema: Option<Ema>,
    ema_vars: HashMap<String, Var>,
    state: TrainState,
    metrics: Option<MetricsLog>,
}

/// Trains the run of `config` (see the module docs).
pub fn train(config: &Path, opts: &Options, comm: &dyn Communicator, stop: &AtomicBool, obs: &mut dyn Observer) -> Result<Outcome> {
    let cfg = RunConfig::from_file(config)?;
    let text = std::fs::read_to_string(config).map_err(TrainError::io(config))?;
    let dir = opts.out.clone();
    let lead = comm.rank() == 0;
    let resolved = serde_json::to_string_pretty(&cfg).expect("config serialises");
    let latest = checkpoint::latest(&dir);
    if opts.resume {
        let saved = std::fs::read_to_string(dir.join(CONFIG_RESOLVED))
            .map_err(|_| TrainError::RunDir { dir: dir.clone(), reason: "nothing to resume: no config.resolved.json (start it without --resume)".into() })?;
        if saved != resolved {
            let before = serde_json::from_str::<RunConfig>(&saved).ok();
            match before.filter(|b| only_lengthens(b, &cfg)) {
                Some(b) if lead && b.total_steps() != cfg.total_steps() => {
                    obs.message(&format!("lengthening the run from {} to {} steps (the learning-rate schedule follows the new length)", b.total_steps(), cfg.total_steps()));
                    std::fs::write(dir.join(CONFIG_COPY), &text).map_err(TrainError::io(&dir))?;
                    std::fs::write(dir.join(CONFIG_RESOLVED), &resolved).map_err(TrainError::io(&dir))?;
                }
                Some(_) => {}
                None => {
                    return Err(TrainError::RunDir {
                        dir: dir.clone(),
                        reason: format!("was started with a different config; resume with its own {CONFIG_COPY} (only more steps in the last stage may change) or start a new run"),
                    })
                }
            }
        }
    } else if latest.is_some() {
        return Err(TrainError::RunDir { dir: dir.clone(), reason: "already has checkpoints".into() });
    }
    let dataset = Arc::new(Dataset::open(&cfg.data)?);
    if !dataset.skipped().is_empty() {
        obs.message(&format!(
            "skipped {} unreadable or uncaptioned file(s): {}",
            dataset.skipped().len(),
            dataset.skipped().iter().take(5).map(|s| s.to_string()).collect::<Vec<_>>().join("; ")
        ));
    }
    // The tokenizer of a fresh text encoder is made once and kept in the run directory.
    let tok_path = dir.join(TOKENIZER_FILE);
    let tokenizer = if tok_path.is_file() {
        Some(TextTokenizer::from_file(&tok_path)?)
    } else if cfg.task == Task::Transformer && cfg.model.text_encoder.is_some() {
        Some(crate::models::fresh_tokenizer(&cfg, &dataset)?)
    } else {
        None
    };
    let models = Models::build(&cfg, tokenizer)?;
    if let Dataset::Cache(cache) = dataset.as_ref() {
        let text_hash = match &models.text {
            Some(Text::Other { dir, .. }) => Some(crate::cache::component_hash(&Weights::Dir(dir.clone()), "")?),
            Some(Text::Reel { map, .. }) if !models.train_text => Some(crate::cache::component_hash(&Weights::Vars(map.clone()), "")?),
            _ => None,
        };
        cache.check_model(&crate::cache::component_hash(&models.vae_weights, "")?, text_hash.as_deref())?;
    }
    if lead && !opts.resume {
        std::fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
        std::fs::write(dir.join(CONFIG_COPY), &text).map_err(TrainError::io(&dir))?;
        std::fs::write(dir.join(CONFIG_RESOLVED), &resolved).map_err(TrainError::io(&dir))?;
        if let Some(t) = &models.tokenizer {
            t.save(&tok_path)?;
        }
    }
    comm.barrier();
    let prefixes = models.trainable_prefixes();
    let ema_vars: HashMap<String, Var> = models.named_vars().into_iter().filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p))).collect();
    let mut run = Run {
        opt: AdamW::new(&cfg.optimizer),
        ema: cfg.train.ema_decay.map(|d| Ema::new(&ema_vars, d)).transpose()?,
        ema_vars,
        state: TrainState { seed: cfg.seed, ..Default::default() },
        metrics: None,
        cfg,
        dir,
        comm,
        models,
        dataset,
    };
    if let Some((_, path)) = latest.filter(|_| opts.resume) {
        run.restore(&path)?;
        obs.message(&format!("resuming after step {} from {}", run.state.step, path.display()));
    } else {
        run.state.skipped = run.dataset.skipped().to_vec();
    }
    if lead {
        run.metrics = Some(MetricsLog::open(&run.dir, run.state.step)?);
    }
    run.train(opts, stop, obs)
}

impl Run<'_> {
    fn restore(&mut self, path: &Path) -> Result<()> {
        let ck = Checkpoint::load(path)?;
        let bad = |e: candle_core::Error| TrainError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() };
        self.models.set_weights(&ck.group("model")).map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
        self.opt.load_state(&ck.group("optimizer"), &ck.state.optimizer_steps).map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
        if let Some(ema) = &mut self.ema {
            ema.restore(&ck.group("ema"), ck.state.ema_updates).map_err(bad)?;
        }
        self.state = ck.state;
        Ok(())
    }

    fn save_checkpoint(&mut self, stages: &[Stage]) -> Result<()> {
        if self.comm.rank() == 0 {
            (self.state.stage, self.state.stage_micro_batch) = data_position(stages, self.state.step, self.cfg.train.grad_accum);
            let (opt_tensors, opt_steps) = self.opt.state()?;
            self.state.optimizer_steps = opt_steps;
            self.state.ema_updates = self.ema.as_ref().map_or(0, Ema::updates);
            let ema = self.ema.as_ref().map(|e| e.weights().clone()).unwrap_or_default();
            checkpoint::save(&self.dir, &self.state, &[("model", self.models.weights()?), ("optimizer", opt_tensors), ("ema", ema)], self.cfg.checkpoint.keep)?;
        }
        self.comm.barrier();
        Ok(())
    }

    fn train(&mut self, opts: &Options, stop: &AtomicBool, obs: &mut dyn Observer) -> Result<Outcome> {
        let stages = self.cfg.stages();
        let total = self.cfg.total_steps();
        let limit = opts.max_steps.unwrap_or(total).min(total);
        let lead = self.comm.rank() == 0;
        obs.start(total, self.state.step);
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_seconds;
        let v = &self.cfg.validation;
        let validates = match self.cfg.task {
            Task::Transformer => !v.prompts.is_empty(),
            Task::Vae => v.clips > 0,
        };
        let accum = self.cfg.train.grad_accum;
        while self.state.step < limit {
            let (si, micro_batch) = data_position(&stages, self.state.step, accum);
            let stage = stages[si].clone();
            let trainable: Vec<(String, Var)> = {
                let prefixes = self.models.trainable_prefixes();
                self.models.named_vars().into_iter().filter(|(k, _)| keep_var(k, &prefixes, &stage.freeze)).collect()
            };
            if trainable.is_empty() {
                return Err(TrainError::Config { path: self.dir.join(CONFIG_COPY), reason: format!("stage '{}' freezes every parameter", stage.name) });
            }
            let spec = LoaderSpec {
                buckets: stage.buckets.clone(),
                seed: self.cfg.seed,
                start: micro_batch,
                rank: self.comm.rank(),
                ranks: self.comm.size(),
                id_base: (si as u64) << 40,
            };
            let mut loader = Loader::start(self.dataset.clone(), self.cfg.data.clone(), spec)?;
            let stage_end = stage.first_step + stage.steps - 1;
            while self.state.step < stage_end.min(limit) {
                let (mut record, interrupted) = self.step(&stage, &trainable, &mut loader, stop)?;
                record.seconds = elapsed_before + started.elapsed().as_secs_f64();
                self.state.elapsed_seconds = record.seconds;
                if let Some(m) = &self.metrics {
                    m.append(&record)?;
                }
                obs.step(&record, total);
                let s = self.state.step;
                let end = s == limit || s == stage_end;
                if lead && (s % self.cfg.logging.plot_every.max(1) == 0 || end) {
                    metrics::plot(&metrics::read(&self.dir.join(metrics::FILE))?, &self.dir.join(metrics::PLOT))?;
                }
                if interrupted || end || s % self.cfg.checkpoint.every.max(1) == 0 {
                    self.save_checkpoint(&stages)?;
                }
                if interrupted {
                    return Err(TrainError::Interrupted { step: s });
                }
                let every = self.cfg.validation.every;
                let due = (every > 0 && s % every == 0) || (s == total && every == 0);
                if lead && validates && due {
                    self.validate(&stage, obs)?;
                }
            }
        }
        let run = self.dir.clone();
        Ok(if self.state.step >= total { Outcome::Finished { step: self.state.step, run } } else { Outcome::Stopped { step: self.state.step, run } })
    }

    /// One optimizer step; returns its record and whether any rank was interrupted.
    fn step(&mut self, stage: &Stage, trainable: &[(String, Var)], loader: &mut Loader, stop: &AtomicBool) -> Result<(StepRecord, bool)> {
        let t0 = Instant::now();
        let accum = self.cfg.train.grad_accum;
        let mut grads: Vec<Vec<f32>> = trainable.iter().map(|(_, v)| vec![0f32; v.elem_count()]).collect();
        let mut local = [0f64; 3]; // loss, samples, interrupted
        let encoder_trains = trainable.iter().any(|(k, _)| is_encoder_weight(k));
        for _ in 0..accum {
            let batch = loader.next_batch()?;
            self.state.skipped.extend(batch.skipped.iter().cloned());
            self.state.next_sample_id = batch.sample_ids.last().map_or(0, |i| i + 1);
            let loss = match self.cfg.task {
                Task::Transformer => self.transformer_loss(&batch)?,
                Task::Vae => self.vae_loss(&batch, encoder_trains)?,
            };
            let g = (&loss / accum as f64)?.backward()?;
            for ((_, var), acc) in trainable.iter().zip(grads.iter_mut()) {
                if let Some(t) = g.get(var.as_tensor()) {
                    for (a, x) in acc.iter_mut().zip(t.flatten_all()?.to_vec1::<f32>()?) {
                        *a += x;
                    }
                }
            }
            local[0] += loss.to_scalar::<f32>()? as f64 / accum as f64;
            local[1] += batch.captions.len() as f64;
        }
        local[2] = stop.load(Ordering::Relaxed) as u8 as f64;
        // Average over ranks: one flat all-reduce for the gradients, one for the scalars.
        let world = self.comm.size();
        if world > 1 {
            let mut flat: Vec<f32> = grads.iter().flatten().copied().collect();
            self.comm.all_reduce_sum(&mut flat)?;
            let mut off = 0;
            for g in grads.iter_mut() {
                let n = g.len();
                for (x, y) in g.iter_mut().zip(&flat[off..off + n]) {
                    *x = y / world as f32;
                }
                off += n;
            }
            self.comm.all_reduce_sum_f64(&mut local)?;
            local[0] /= world as f64;
        }
        let loss = local[0];
        let step = self.state.step + 1;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step, loss });
        }
        let grad_norm = clip_grad_norm(&mut grads, self.cfg.optimizer.grad_clip);
        let schedule = LrSchedule {
            lr: stage.lr,
            warmup_steps: self.cfg.schedule.warmup_steps,
            total_steps: stage.steps,
            min_lr: self.cfg.schedule.min_lr,
            decay: self.cfg.schedule.decay,
        };
        let lr = schedule.at(step - stage.first_step);
        if grad_norm.is_finite() {
            for ((name, var), g) in trainable.iter().zip(&grads) {
                self.opt.update(name, var, g, lr)?;
            }
            if let Some(ema) = &mut self.ema {
                ema.update(&self.ema_vars)?;
            }
        }
        self.state.step = step;
        self.state.samples += local[1] as u64;
        let seconds = t0.elapsed().as_secs_f64();
        let record = StepRecord {
            step,
            loss,
            grad_norm,
            lr,
            samples_per_s: local[1] / seconds.max(1e-9),
            peak_memory_mib: metrics::peak_rss().map_or(0.0, |b| b as f64 / (1024.0 * 1024.0)),
            stage: stage.name.clone(),
            samples: self.state.samples,
            skipped: self.state.skipped.len(),
            seconds: 0.0,
        };
        Ok((record, local[2] > 0.0))
    }

    /// The posterior sample `mean + σ·ε` with ε keyed by sample id.
    fn posterior_sample(&self, mean: &Tensor, logvar: &Tensor, ids: &[u64]) -> Result<Tensor> {
        let eps = per_sample_noise(self.cfg.seed, POSTERIOR_STREAM, ids, mean)?;
        Ok((mean + (logvar * 0.5)?.exp()?.mul(&eps)?)?)
    }

    fn transformer_loss(&self, batch: &Batch) -> Result<Tensor> {
        let (transformer, _) = self.models.transformer.as_ref().expect("transformer task");
        let vae = &self.models.vae;
        let t = &self.cfg.train;
        let ids = &batch.sample_ids;
        let (mean, logvar, cached_text) = match &batch.payload {
            Payload::Pixels(p) => {
                let post = vae.encode(p)?;
                (post.mean.detach(), post.logvar.detach(), None)
            }
            Payload::Latents { mean, logvar, text } => (mean.clone(), logvar.clone(), text.clone()),
        };
        let x0 = vae.normalize_latents(&self.posterior_sample(&mean, &logvar, ids)?)?.detach();
        let eps = per_sample_noise(self.cfg.seed, NOISE_STREAM, ids, &x0)?;
        let sigmas: Vec<f32> = ids
            .iter()
            .map(|&id| {
                let mut k = 0;
                let key = noise::item_key(self.cfg.seed, SIGMA_STREAM, id);
                sample_logit_normal_sigmas(1, t.timestep_mean, t.timestep_std, t.timestep_shift, || {
                    k += 1;
                    noise::uniform(key, k)
                })[0] as f32
            })
            .collect();
        let dev = Device::Cpu;
        let sigma_t = Tensor::from_vec(sigmas.clone(), ids.len(), &dev)?;
        let xt = add_noise(&x0, &eps, &sigma_t)?;
        let target = velocity_target(&x0, &eps)?;
        let dropped: Vec<bool> = ids.iter().map(|&id| noise::uniform(noise::key(self.cfg.seed, DROPOUT_STREAM), id) < t.condition_dropout).collect();
        let captions: Vec<&str> = batch.captions.iter().zip(&dropped).map(|(c, &d)| if d { "" } else { c.as_str() }).collect();
        let text = self.models.text.as_ref().expect("transformer task");
        let tokenizer = self.models.tokenizer.as_ref().expect("transformer task");
        let max_len = self.cfg.model.max_text_len;
        let context = match cached_text {
            Some(cached) if !self.models.train_text => {
                let empty = encode_prompts(text.encoder(), tokenizer, &[""], max_len, &dev)?.squeeze(0)?;
                let rows = (0..ids.len()).map(|i| if dropped[i] { Ok(empty.clone()) } else { cached.get(i) }).collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::stack(&rows, 0)?
            }
            _ => {
                let c = encode_prompts(text.encoder(), tokenizer, &captions, max_len, &dev)?;
                if self.models.train_text { c } else { c.detach() }
            }
        };
        let first_frame = (t.first_frame_share > 0.0).then(|| {
            ids.iter().map(|&id| noise::uniform(noise::key(self.cfg.seed, FIRST_FRAME_STREAM), id) < t.first_frame_share).collect::<Vec<bool>>()
        });
        let (xt, timestep, keep) = match &first_frame {
            Some(clean) => {
                let (xt, timestep, keep) = first_frame_input(&xt, &x0, &sigmas, clean)?;
                (xt, timestep, Some(keep))
            }
            None => (xt, (&sigma_t * 1000.0)?, None),
        };
        let input = if t.keyframes.is_empty() { xt } else { keyframe_input(&xt, &x0, &t.keyframes)? };
        let fps = Tensor::from_vec(batch.fps.clone(), ids.len(), &dev)?;
        let pred = transformer.forward(&WanInput {
            hidden_states: &input,
            timestep: &timestep,
            encoder_hidden_states: &context,
            fps: transformer.config().fps_conditioning.then_some(&fps),
            frame_offset: 0,
        })?;
        flow_matching_loss(&pred, &target, &x0, keep.as_ref(), t)
    }

    /// With the encoder frozen (`encoder_trains` false) the posterior is cut from the graph,
    /// so the backward pass stops at the decoder instead of running through the encoder for
    /// gradients nothing uses; the KL term is then a constant.
    fn vae_loss(&self, batch: &Batch, encoder_trains: bool) -> Result<Tensor> {
        let Payload::Pixels(x) = &batch.payload else { unreachable!("checked by the config: a VAE run reads pixels") };
        let vae = &self.models.vae;
        let mut post = vae.encode(x)?;
        if !encoder_trains {
            post.mean = post.mean.detach();
            post.logvar = post.logvar.detach();
        }
        let z = self.posterior_sample(&post.mean, &post.logvar, &batch.sample_ids)?;
        let decoded = vae.decode_unclamped(&z)?;
        let diff = (&decoded - x)?;
        let err = match self.cfg.train.recon_loss {
            ReconLoss::L1 => diff.abs()?,
            ReconLoss::Mse => diff.sqr()?,
        };
        let weight = self.cfg.train.foreground_weight;
        let recon = match self.cfg.train.foreground_of {
            ForegroundOf::Target => foreground_mean(&err, x, weight, ForegroundRamp::PIXELS)?,
            ForegroundOf::Either => weighted_mean(&err, &either_foreground_weights(&decoded, x, weight, ForegroundRamp::PIXELS)?)?,
        };
        let kl = ((post.mean.sqr()? + post.logvar.exp()?)? - 1.0)?.sub(&post.logvar)?.mean_all()?.affine(0.5, 0.0)?;
        let mut loss = (recon + (kl * self.cfg.train.kl_weight)?)?;
        if self.cfg.train.edge_weight > 0.0 {
            loss = (loss + (edge_l1(&diff)? * self.cfg.train.edge_weight)?)?;
        }
        Ok(loss)
    }

    /// Renders the validation prompts (transformer) or reconstructs held-out clips (VAE) into
    /// `RUN/samples/step-N/`, with the EMA weights when there are any.
    fn validate(&mut self, stage: &Stage, obs: &mut dyn Observer) -> Result<()> {
        let out = self.dir.join("samples").join(format!("step-{:08}", self.state.step));
        std::fs::create_dir_all(&out).map_err(TrainError::io(&out))?;
        let current = self.models.weights()?;
        if let Some(ema) = &self.ema {
            let mut w = current.clone();
            w.extend(ema.weights().iter().map(|(k, v)| (k.clone(), v.clone())));
            self.models.set_weights(&w)?;
        }
        let result = self.render(stage, &out, obs);
        self.models.set_weights(&current)?;
        result
    }

    fn render(&self, stage: &Stage, out: &Path, obs: &mut dyn Observer) -> Result<()> {
        let bucket = stage.buckets.iter().max_by_key(|b| b.frames).copied().expect("stages have buckets");
        let v = &self.cfg.validation;
        let fps = self.cfg.data.fps.iter().copied().fold(f64::INFINITY, f64::min);
        let fps = if fps.is_finite() { fps } else { self.cfg.data.shapes_fps };
        let rate = reel_media::Rational::approximate(fps).unwrap_or(reel_media::Rational::integer(8));
        let mut sheet_frames = Vec::new();
        match &self.models.transformer {
            Some(_) if !self.cfg.train.keyframes.is_empty() => {
                obs.message("validation: an interpolation (keyframe) model needs keyframes to render; no prompts rendered");
                return Ok(());
            }
            Some((transformer, _)) => {
                let text = self.models.text.as_ref().expect("transformer task");
                let scheduler = reel_schedulers::SchedulerConfig::from_json(&scheduler_config(&self.cfg).to_string())
                    .map_err(|e| TrainError::Config { path: self.dir.join(CONFIG_COPY), reason: format!("model.scheduler: {e}") })?;
                let c = Components {
                    transformer,
                    vae: &self.models.vae,
                    text_encoder: text.encoder(),
                    tokenizer: self.models.tokenizer.as_ref().expect("transformer task"),
                    scheduler,
                    max_text_len: self.cfg.model.max_text_len,
                    planner: None,
                };
                let settings = Settings {
                    width: bucket.width as usize,
                    height: bucket.height as usize,
                    frames: bucket.frames as usize,
                    fps,
                    steps: v.steps,
                    guidance: v.guidance,
                    first_frame_steps: if self.cfg.train.first_frame_share > 0.0 { v.steps } else { 0 },
                    layout_strength: 0.0,
                    layout_first_frame: false,
                    layout_guidance: 0.0,
                    layout_erosion: 0.0,
                    layout_refine: 0,
                    seed: v.seed,
                    negative_prompt: String::new(),
                };
                for (i, prompt) in v.prompts.iter().enumerate() {
                    let frames = c.generate(prompt, &settings, |_, _| {})?;
                    reel_media::write_video(&out.join(format!("{i:02}.mp4")), None, rate, &frames, &Default::default())?;
                    sheet_frames.extend(frames.iter().step_by((frames.len() / 4).max(1)).take(4).cloned());
                }
                std::fs::write(out.join("prompts.txt"), v.prompts.join("\n") + "\n").map_err(TrainError::io(out))?;
            }
            None => {
                let mut data = self.cfg.data.clone();
                data.source = SourceKind::Shapes;
                data.split = reel_data::Split::Holdout;
                data.flip = 0.0;
                data.color_jitter = 0.0;
                data.random_crop = false;
                let holdout = Dataset::Shapes { config: data.clone() };
                let mut psnrs = Vec::new();
                for i in 0..v.clips as u64 {
                    let ex = holdout.load(i, &bucket, i, &data, v.seed).map_err(TrainError::Data)?;
                    let crate::data::ExamplePayload::Pixels(p) = ex.payload else { unreachable!("shapes gives pixels") };
                    let shape = (1, 3, bucket.frames as usize, bucket.height as usize, bucket.width as usize);
                    let x = Tensor::from_vec(p, shape, &Device::Cpu)?;
                    let recon = self.models.vae.decode(&self.models.vae.encode(&x)?.mean)?;
                    let (a, b) = (frames_from_pixels(&x, 0)?, frames_from_pixels(&recon, 0)?);
                    psnrs.push(reel_media::video_psnr(&a, &b));
                    let side: Vec<reel_media::Frame> = a.iter().zip(&b).map(|(a, b)| reel_media::contact_sheet(&[a.clone(), b.clone()], 2, 0).expect("two frames")).collect();
                    reel_media::write_video(&out.join(format!("recon-{i:02}.mp4")), None, rate, &side, &Default::default())?;
                    sheet_frames.extend(side.iter().step_by((side.len() / 4).max(1)).take(4).cloned());
                }
                let mean = psnrs.iter().sum::<f64>() / psnrs.len().max(1) as f64;
                obs.message(&format!("validation at step {}: reconstruction PSNR {mean:.2} dB", self.state.step));
                std::fs::write(out.join("psnr.json"), serde_json::json!({ "step": self.state.step, "psnr_db": psnrs, "mean_db": mean }).to_string())
                    .map_err(TrainError::io(out))?;
            }
        }
        if let Some(sheet) = reel_media::contact_sheet(&sheet_frames, 4, 2) {
            reel_media::write_png(&out.join("sheet.png"), &sheet)?;
        }
        Ok(())
    }
}

/// First-frame conditioning: for the clips marked in `clean`, latent frame 0 of `xt` becomes
/// the clean `x0`'s, at timestep 0, and is left out of the loss. Returns the input, the
/// per-frame timesteps `[B, F]` (σ·1000 elsewhere) and the loss mask `[B, 1, F, 1, 1]`.
fn first_frame_input(xt: &Tensor, x0: &Tensor, sigmas: &[f32], clean: &[bool]) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, _, f, _, _) = xt.dims5()?;
    let mut shown = vec![0f32; b * f];
    let mut timestep = vec![0f32; b * f];
    for i in 0..b {
        for j in 0..f {
            let is_clean = clean[i] && j == 0;
            shown[i * f + j] = if is_clean { 1.0 } else { 0.0 };
            timestep[i * f + j] = if is_clean { 0.0 } else { sigmas[i] * 1000.0 };
        }
    }
    let dev = xt.device();
    let shown = Tensor::from_vec(shown, (b, 1, f, 1, 1), dev)?;
    let keep = shown.affine(-1.0, 1.0)?;
    let input = (xt.broadcast_mul(&keep)? + x0.broadcast_mul(&shown)?)?;
    Ok((input, Tensor::from_vec(timestep, (b, f), dev)?, keep))
}

/// `[x_t, keyframe latents (zero elsewhere), mask]` along channels: the listed latent frames
/// (negative from the end) are shown clean to an interpolation model.
fn keyframe_input(xt: &Tensor, x0: &Tensor, keyframes: &[i64]) -> Result<Tensor> {
    let (b, _, f, h, w) = xt.dims5()?;
    let mut mask = vec![0f32; f];
    for &k in keyframes {
        let i = if k < 0 { f as i64 + k } else { k };
        if (0..f as i64).contains(&i) {
            mask[i as usize] = 1.0;
        }
    }
    let m = Tensor::from_vec(mask, (1, 1, f, 1, 1), xt.device())?;
    let cond = x0.broadcast_mul(&m)?;
    let mask = m.broadcast_as((b, 1, f, h, w))?.contiguous()?;
    Ok(Tensor::cat(&[xt, &cond, &mask], 1)?)
}

/// Loads a run's config and newest checkpoint and writes a diffusers-layout model directory
/// (EMA weights when the run keeps an EMA, unless `raw`). A VAE run's export also gets its
/// latent statistics, measured on `latent_clips` clips of its data (0: none), unless the run
/// froze the encoder of a VAE that had them: those are kept.
pub fn export(run: &Path, out: &Path, raw: bool, latent_clips: usize) -> Result<PathBuf> {
    let text = std::fs::read_to_string(run.join(CONFIG_RESOLVED))
        .map_err(|_| TrainError::RunDir { dir: run.to_path_buf(), reason: format!("no {CONFIG_RESOLVED}: not a run directory") })?;
    let cfg: RunConfig = serde_json::from_str(&text).map_err(|e| TrainError::RunDir { dir: run.to_path_buf(), reason: format!("{CONFIG_RESOLVED}: {e}") })?;
    let (_, path) = checkpoint::latest(run).ok_or_else(|| TrainError::RunDir { dir: run.to_path_buf(), reason: "has no checkpoint yet".into() })?;
    let tok = run.join(TOKENIZER_FILE);
    let tokenizer = if tok.is_file() { Some(TextTokenizer::from_file(&tok)?) } else { None };
    let models = Models::build(&cfg, tokenizer)?;
    let ck = Checkpoint::load(&path)?;
    let mut weights = ck.group("model");
    if !raw {
        weights.extend(ck.group("ema"));
    }
    models.export(&cfg, &weights, out)?;
    // A run that never trained the encoder keeps the statistics it started with: the latents
    // did not change, and a transformer may have been trained with exactly those numbers.
    let encoder: Vec<&String> = weights.keys().filter(|n| is_encoder_weight(n)).collect();
    let encoder_frozen = !encoder.is_empty() && cfg.stages().iter().all(|s| encoder.iter().all(|n| s.freeze.iter().any(|f| glob(f, n))));
    let has_stats = !models.vae.config().latents_mean.is_empty();
    if cfg.task == Task::Vae && latent_clips > 0 && !(encoder_frozen && has_stats) {
        let result = write_latent_stats(&cfg, out, latent_clips);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(out);
        }
        result?;
    }
    Ok(path)
}

/// Random stream of the clips latent statistics are measured on (apart from training's).
const STATS_STREAM: u64 = 0x57a7;

/// Measures the per-channel mean and standard deviation of the exported VAE's posterior means
/// over `clips` clips of the run's data (the last stage's first bucket) and writes them into
/// `out/vae/config.json` as `latents_mean` / `latents_std`, which the transformer is trained
/// and sampled with (Wan's VAE ships its own the same way).
fn write_latent_stats(cfg: &RunConfig, out: &Path, clips: usize) -> Result<()> {
    let vae = reel_models::load_wan_vae(&out.join("vae"), candle_core::DType::F32, &Device::Cpu)?;
    let dataset = Dataset::open(&cfg.data)?;
    let stages = cfg.stages();
    let bucket = stages.last().and_then(|s| s.buckets.first()).copied().ok_or_else(|| TrainError::Data("the run has no bucket".into()))?;
    let buckets = [bucket];
    let seed = cfg.seed ^ STATS_STREAM;
    let mut planner = crate::data::Planner::new(&dataset, &buckets, seed, 1, 0)?;
    let z = vae.config().z_dim;
    let (mut sum, mut sq, mut count) = (vec![0f64; z], vec![0f64; z], 0usize);
    let mut seen = 0;
    while seen < clips {
        let batch = crate::data::load_batch(&dataset, &planner.next_plan(), &buckets, 0, &cfg.data, seed)?;
        let Payload::Pixels(x) = &batch.payload else { return Err(TrainError::Data("latent statistics need pixels, not a latent cache".into())) };
        let mean = vae.encode(x)?.mean.transpose(0, 1)?.flatten_from(1)?; // [z, B·T·h·w]
        let values = mean.to_vec2::<f32>()?;
        for (c, row) in values.iter().enumerate() {
            sum[c] += row.iter().map(|&v| v as f64).sum::<f64>();
            sq[c] += row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        }
        count += values[0].len();
        seen += bucket.batch_size;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let std: Vec<f64> = sq.iter().zip(&mean).map(|(q, m)| (q / count as f64 - m * m).max(1e-12).sqrt()).collect();
    let path = out.join("vae/config.json");
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    config["latents_mean"] = serde_json::json!(mean);
    config["latents_std"] = serde_json::json!(std);
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json")).map_err(TrainError::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn stage(first_step: u64, steps: u64) -> Stage {
        Stage { name: String::new(), first_step, steps, buckets: Vec::new(), freeze: Vec::new(), lr: 1.0 }
    }

    #[test]
    fn the_data_position_follows_from_the_step() {
        let stages = [stage(1, 3), stage(4, 2)];
        assert_eq!(data_position(&stages, 0, 2), (0, 0));
        assert_eq!(data_position(&stages, 2, 2), (0, 4));
        // After the image stage's last step, the next step starts the video stage.
        assert_eq!(data_position(&stages, 3, 2), (1, 0));
        assert_eq!(data_position(&stages, 4, 2), (1, 2));
        assert_eq!(data_position(&stages, 5, 2), (1, 4));
    }

    #[test]
    fn the_temporal_term_sees_only_errors_that_change_over_frames() -> Result<()> {
        let dev = Device::Cpu;
        let steady = Tensor::ones((1, 2, 5, 2, 2), DType::F32, &dev)?;
        assert_eq!(temporal_difference_mse(&steady)?.to_scalar::<f32>()?, 0.0);
        // The same mean square, alternating in sign from frame to frame: each change is 2.
        let sign = Tensor::new(&[1f32, -1.0, 1.0, -1.0, 1.0], &dev)?.reshape((1, 1, 5, 1, 1))?;
        let flicker = steady.broadcast_mul(&sign)?;
        assert_eq!(temporal_difference_mse(&flicker)?.to_scalar::<f32>()?, 4.0);
        assert_eq!(temporal_difference_mse(&steady.narrow(2, 0, 1)?)?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("text_encoder.*", "text_encoder.layers.0.qkv.weight"));
        assert!(glob("transformer.blocks.*.attn1.*", "transformer.blocks.3.attn1.to_q.weight"));
        assert!(!glob("transformer.blocks.1.*", "transformer.blocks.10.ffn.weight"));
        assert!(glob("*.bias", "vae.decoder.conv.bias"));
        assert!(!glob("*.bias", "vae.decoder.conv.weight"));
        assert!(glob("exact.name", "exact.name") && !glob("exact.name", "exact.names"));
        assert!(!glob("a*a", "a"));
    }

    #[test]
    fn a_clean_first_frame_has_timestep_zero_and_no_loss() -> Result<()> {
        let dev = Device::Cpu;
        let xt = Tensor::full(5f32, (2, 1, 3, 1, 1), &dev)?;
        let x0 = Tensor::full(7f32, (2, 1, 3, 1, 1), &dev)?;
        let (input, timestep, keep) = first_frame_input(&xt, &x0, &[0.5, 0.9], &[true, false])?;
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&input), vec![7.0, 5.0, 5.0, 5.0, 5.0, 5.0], "only the first clip's first frame is clean");
        assert_eq!(v(&timestep), vec![0.0, 500.0, 500.0, 900.0, 900.0, 900.0]);
        assert_eq!(v(&keep), vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        // Any error on the clean frame costs nothing; on the others as before.
        let mut cfg = RunConfig::from_toml(include_str!("../../../configs/shapes-v1/transformer.toml"), Path::new("t.toml")).unwrap().train;
        cfg.foreground_weight = 1.0;
        let target = x0.zeros_like()?;
        let mut wrong_first = vec![0f32; 6];
        wrong_first[0] = 3.0;
        let pred = Tensor::from_vec(wrong_first, (2, 1, 3, 1, 1), &dev)?;
        assert_eq!(flow_matching_loss(&pred, &target, &x0, Some(&keep), &cfg)?.to_scalar::<f32>()?, 0.0);
        let pred = Tensor::from_vec(vec![0f32, 3.0, 0.0, 0.0, 0.0, 0.0], (2, 1, 3, 1, 1), &dev)?;
        assert_eq!(flow_matching_loss(&pred, &target, &x0, Some(&keep), &cfg)?.to_scalar::<f32>()?, 1.5);
        Ok(())
    }

    #[test]
    fn keyframes_are_shown_clean_with_a_mask() {
        let dev = Device::Cpu;
        let xt = Tensor::full(5f32, (1, 2, 3, 1, 1), &dev).unwrap();
        let x0 = Tensor::full(7f32, (1, 2, 3, 1, 1), &dev).unwrap();
        let input = keyframe_input(&xt, &x0, &[0, -1]).unwrap();
        assert_eq!(input.dims(), &[1, 5, 3, 1, 1]);
        let v: Vec<f32> = input.flatten_all().unwrap().to_vec1().unwrap();
        // Channels: x_t (2), keyframe latents (2: frames 0 and 2 shown, 1 zero), mask (1).
        assert_eq!(v, vec![5., 5., 5., 5., 5., 5., 7., 0., 7., 7., 0., 7., 1., 0., 1.]);
    }

    #[test]
    fn foreground_pixels_weigh_more() {
        // One 4×4 frame: background 0 in every channel, one pixel at 1 in the first channel,
        // one at 0.5. Mean (the background estimate) 1.5 / 16 in channel 0; distances 0.906
        // (full weight), 0.406 (on the ramp: 1 + 4 · 0.156 / 0.35) and 0.094 (weight 1).
        let dev = Device::Cpu;
        let mut c0 = [0f32; 16];
        c0[0] = 1.0;
        c0[5] = 0.5;
        let mut v = c0.to_vec();
        v.extend([0f32; 32]);
        let x = Tensor::from_vec(v, (1, 3, 1, 4, 4), &dev).unwrap();
        let w: Vec<f32> = foreground_weights(&x, 5.0, ForegroundRamp::PIXELS).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(w.len(), 16, "one weight per pixel, shared by the channels");
        let expect = |i: usize| if i == 0 { 5.0 } else if i == 5 { 1.0 + 4.0 * (0.5 - 0.09375 - 0.25) / 0.35 } else { 1.0 };
        for (i, a) in w.iter().enumerate() {
            assert!((a - expect(i)).abs() < 1e-5, "pixel {i}: {a} vs {}", expect(i));
        }
        // Weight 1 is the plain loss.
        let ones: Vec<f32> = foreground_weights(&x, 1.0, ForegroundRamp::PIXELS).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(ones.iter().all(|&o| o == 1.0));
    }

    #[test]
    fn either_foreground_weighs_what_the_reconstruction_draws_too() {
        // A 4x4 frame, background 0: the target has an object at pixel 0, the reconstruction
        // draws it there and leaves a ghost at pixel 9 (the object where it was).
        let dev = Device::Cpu;
        let frame = |on: &[usize]| {
            let mut v = vec![0f32; 48];
            for &i in on {
                v[i] = 1.0;
            }
            Tensor::from_vec(v, (1, 3, 1, 4, 4), &dev).unwrap()
        };
        let (x, y) = (frame(&[0]), frame(&[0, 9]));
        let weights = |w: Tensor| -> Vec<f32> { w.flatten_all().unwrap().to_vec1().unwrap() };
        let target = weights(foreground_weights(&x, 10.0, ForegroundRamp::PIXELS).unwrap());
        let either = weights(either_foreground_weights(&y, &x, 10.0, ForegroundRamp::PIXELS).unwrap());
        assert_eq!((target[0], target[9]), (10.0, 1.0), "the target alone lets the ghost off");
        assert_eq!((either[0], either[9]), (10.0, 10.0), "either weighs the ghost as an object");
        assert!(either.iter().enumerate().all(|(i, &w)| i == 0 || i == 9 || w == 1.0), "{either:?}");
        // So the ghost's error costs ten times more of the loss than it did.
        let err = (&y - &x).unwrap().abs().unwrap();
        let ghost_target = weighted_mean(&err, &foreground_weights(&x, 10.0, ForegroundRamp::PIXELS).unwrap()).unwrap().to_scalar::<f32>().unwrap();
        let ghost_either = weighted_mean(&err, &either_foreground_weights(&y, &x, 10.0, ForegroundRamp::PIXELS).unwrap()).unwrap().to_scalar::<f32>().unwrap();
        assert!(ghost_either > 5.0 * ghost_target, "{ghost_either} vs {ghost_target}");
    }

    #[test]
    fn latent_foreground_weight_makes_errors_on_objects_cost_more() {
        // A 4×4 latent frame of 16 channels: background 0, one object pixel at 2 in every
        // channel (distance 8 · 15/16 = 7.5 from the frame's mean: full weight).
        let dev = Device::Cpu;
        let mut v = vec![0f32; 16 * 16];
        for c in 0..16 {
            v[c * 16 + 6] = 2.0;
        }
        let x = Tensor::from_vec(v, (1, 16, 1, 4, 4), &dev).unwrap();
        let error_at = |pixel: usize| {
            let mut e = vec![0f32; 16 * 16];
            e[pixel] = 1.0;
            Tensor::from_vec(e, (1, 16, 1, 4, 4), &dev).unwrap()
        };
        let loss = |e: &Tensor, w: f64| foreground_mean(e, &x, w, ForegroundRamp::LATENTS).unwrap().to_scalar::<f32>().unwrap();
        let (on_object, on_background) = (error_at(6), error_at(0));
        // Weight 1: the plain mean, wherever the error is.
        assert_eq!(loss(&on_object, 1.0), 1.0 / 256.0);
        assert_eq!(loss(&on_background, 1.0), 1.0 / 256.0);
        // Weight 10: Σw = 15 + 10 pixels; an error on the object counts 10 / 25 of a pixel's
        // mean, one on the background 1 / 25.
        let (o, b) = (loss(&on_object, 10.0), loss(&on_background, 10.0));
        assert!((o - 10.0 / (25.0 * 16.0)).abs() < 1e-6, "{o}");
        assert!((b - 1.0 / (25.0 * 16.0)).abs() < 1e-6, "{b}");
    }

    #[test]
    fn the_contrastive_term_makes_ignoring_the_caption_cost_more() {
        // Two clips with targets a = 0 and b = 2 everywhere (x0 flat: no foreground). A model
        // that reads each clip's caption predicts its target; one that ignores captions can
        // do no better than their mean, 1, for both.
        let dev = Device::Cpu;
        let target = Tensor::from_vec([[0f32; 4], [2f32; 4]].concat(), (2, 1, 1, 2, 2), &dev).unwrap();
        let x0 = target.zeros_like().unwrap();
        let ignoring = target.ones_like().unwrap();
        let mut cfg = RunConfig::from_toml(include_str!("../../../configs/shapes-v1/transformer.toml"), Path::new("t.toml")).unwrap().train;
        cfg.foreground_weight = 1.0;
        cfg.temporal_weight = 0.0;
        let loss = |pred: &Tensor, cfg: &TrainConfig| flow_matching_loss(pred, &target, &x0, None, cfg).unwrap().to_scalar::<f32>().unwrap();
        cfg.contrastive_weight = 0.0;
        assert_eq!((loss(&target, &cfg), loss(&ignoring, &cfg)), (0.0, 1.0), "plain flow matching");
        // λ = 0.25: the right prediction is 4 from the other target (−1); the mean one 1 from
        // both (1 − 0.25). The gap grows from 1 to 1.75.
        cfg.contrastive_weight = 0.25;
        assert_eq!((loss(&target, &cfg), loss(&ignoring, &cfg)), (-1.0, 0.75));
        // A batch of one has no other clip: plain flow matching.
        let one = |x: &Tensor| x.narrow(0, 1, 1).unwrap();
        let single = flow_matching_loss(&one(&ignoring), &one(&target), &one(&x0), None, &cfg).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(single, 1.0);
    }

    #[test]
    fn a_run_may_only_grow_its_last_stage() {
        let saved = RunConfig::from_toml(include_str!("../../../configs/shapes-v1/vae.toml"), Path::new("vae.toml")).unwrap();
        let mut longer = saved.clone();
        longer.stages.last_mut().unwrap().steps += 500;
        assert!(only_lengthens(&saved, &longer));
        assert!(only_lengthens(&saved, &saved));
        assert!(!only_lengthens(&longer, &saved), "shorter is not longer");
        let mut first = saved.clone();
        first.stages[0].steps += 500;
        assert!(!only_lengthens(&saved, &first), "an earlier stage moves every later step");
        let mut other = longer.clone();
        other.optimizer.lr *= 2.0;
        assert!(!only_lengthens(&saved, &other), "more steps and another change");
    }

    #[test]
    fn a_moved_config_naming_the_same_folders_still_resumes() {
        let root = tempfile::tempdir().unwrap();
        for d in ["runs/cache", "runs/x", "configs/a", "runs/other"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let text = include_str!("../../../configs/shapes-v1/vae.toml");
        let with_data = |path: &str| text.replacen("[data]", &format!("[data]\npath = \"{path}\""), 1);
        let at = |dir: &str, path: &str| RunConfig::from_toml(&with_data(path), &root.path().join(dir).join("c.toml")).unwrap();
        let saved = at("configs/a", "../../runs/cache");
        assert!(only_lengthens(&saved, &at("runs/x", "../cache")), "the same folder by another route");
        assert!(!only_lengthens(&saved, &at("runs/x", "../other")), "another folder");
    }

    #[test]
    fn the_edge_loss_sees_blurred_edges() {
        let dev = Device::Cpu;
        // A 1×3 row error [0, 1, 3]: horizontal differences 1 and 2 (mean 1.5), no rows below.
        let err = Tensor::new(&[0f32, 1.0, 3.0], &dev).unwrap().reshape((1, 1, 1, 1, 3)).unwrap();
        assert!((edge_l1(&err).unwrap().to_scalar::<f32>().unwrap() - 1.5).abs() < 1e-6);
        // 2×2 [[1, 2], [4, 8]]: horizontal |1|, |4| (mean 2.5); vertical |3|, |6| (mean 4.5).
        let err = Tensor::new(&[1f32, 2.0, 4.0, 8.0], &dev).unwrap().reshape((1, 1, 1, 2, 2)).unwrap();
        assert!((edge_l1(&err).unwrap().to_scalar::<f32>().unwrap() - 7.0).abs() < 1e-6);
        // A constant error (a colour shift) has no edges.
        let flat = Tensor::full(0.3f32, (1, 3, 2, 4, 4), &dev).unwrap();
        assert_eq!(edge_l1(&flat).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }
}
