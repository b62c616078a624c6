//! Training the Shapes World feature network (`reel eval features train`).
//!
//! Clips are rendered on the fly from Shapes World's `all` split (the network judges models,
//! it is not one: it should know held-out triples too). They are clean by default: a network
//! that learned to ignore blur and noise would not see them in a Fréchet distance either;
//! `augment` damages half of them a little (blur up to σ = 1.5, noise up to σ = 8) for a
//! network meant to classify generated clips instead.
//! AdamW with a linear warm-up and cosine decay; every random choice is a function of the
//! seed and the clip index, so a run is reproducible. The run is short (minutes), so it is
//! not resumable: rerun it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use rayon::prelude::*;
use reel_data::rng::Rng;
use reel_data::{ShapesWorld, Split, WorldConfig};
use reel_media::Frame;
use serde::{Deserialize, Serialize};

use super::clips_tensor;
use super::shapes_net::{head_accuracy, loss, targets, ShapesNet, ShapesNetConfig};
use crate::degrade::{gaussian, Degradation};
use crate::error::io_err;
use crate::{EvalError, Result};

/// Random stream for the damage done to training clips.
const AUGMENT_STREAM: u64 = 0xfea7;

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub config: ShapesNetConfig,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    /// Shapes World seed of the training clips; the held-out measurement uses `seed + 1`.
    pub seed: u64,
    /// Held-out clips the finished network's head accuracy is measured on.
    pub eval_clips: usize,
    /// Damage half of the training clips a little (see the module docs).
    #[serde(default)]
    pub augment: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { config: ShapesNetConfig::default(), steps: 1500, batch: 16, lr: 2e-3, warmup: 50, seed: 7, eval_clips: 256, augment: false }
    }
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub options: TrainOptions,
    /// (step, mean loss over the steps since the previous point).
    pub loss: Vec<(usize, f32)>,
    /// Head accuracy per label group on held-out-split clips of another seed.
    pub holdout_accuracy: Vec<(String, f64)>,
    pub seconds: f64,
}

fn world(seed: u64, split: Split, frames: usize) -> Result<ShapesWorld> {
    ShapesWorld::new(WorldConfig { seed, split, frames: frames as u32 + 1, ..Default::default() }).map_err(|e| EvalError::Features { path: "shapes world".into(), reason: e.to_string() })
}

/// A batch of clips `start..start + n` with their targets, damaged when `augment`.
fn batch(world: &ShapesWorld, start: u64, n: usize, size: usize, frames: usize, augment: bool) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    type Item = (Vec<Frame>, (Vec<f32>, [u32; 5]));
    let items: Vec<Item> = (start..start + n as u64)
        .into_par_iter()
        .map(|i| {
            let clip = world.clip(i);
            let mut frames = clip.frames;
            if augment {
                let mut rng = Rng::for_item(world.config().seed, AUGMENT_STREAM, i);
                if rng.chance(0.5) {
                    let damage = if rng.chance(0.5) {
                        Degradation::Blur { sigma: rng.range(0.3, 1.5) as f32 }
                    } else {
                        Degradation::Noise { sigma: rng.range(2.0, 8.0) as f32, seed: rng.next_u64() }
                    };
                    frames = damage.apply(&frames).expect("blur and noise cannot fail");
                }
            }
            (frames, targets(&clip.labels))
        })
        .collect();
    let clips: Vec<&[Frame]> = items.iter().map(|(f, _)| f.as_slice()).collect();
    let x = clips_tensor(&clips, frames, size)?;
    let multi: Vec<Vec<f32>> = items.iter().map(|(_, t)| t.0.clone()).collect();
    let classes: Vec<Vec<u32>> = items.iter().map(|(_, t)| t.1.to_vec()).collect();
    Ok((x, Tensor::new(multi, &Device::Cpu)?, Tensor::new(classes, &Device::Cpu)?))
}

fn candle_err(e: candle_core::Error) -> EvalError {
    EvalError::Features { path: "training".into(), reason: e.to_string() }
}

/// Trains a network and writes `out/config.json`, `out/model.safetensors` and
/// `out/training.json` (all or nothing: the folder is filled under a temporary name and
/// renamed). `progress(step, loss)` is called after every step; setting `stop` ends the run
/// after the current step with an error, writing nothing.
pub fn train(options: &TrainOptions, out: &Path, stop: &AtomicBool, mut progress: impl FnMut(usize, f32)) -> Result<TrainReport> {
    options.config.validate().map_err(|reason| EvalError::Features { path: out.to_path_buf(), reason })?;
    if out.exists() {
        return Err(EvalError::Features { path: out.to_path_buf(), reason: "already exists; choose another --out or remove it".into() });
    }
    let started = std::time::Instant::now();
    let cfg = &options.config;
    let train_world = world(options.seed, Split::All, cfg.frames)?;
    let vm = VarMap::new();
    let device = Device::Cpu;
    // Seeded initial weights (Kaiming normal; candle's CPU generator cannot be seeded).
    ShapesNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &device)).map_err(candle_err)?;
    let mut rng = Rng::new(options.seed);
    let mut vars: Vec<_> = vm.data().lock().expect("not poisoned").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars.iter().filter(|(name, var)| name.ends_with(".weight") && var.rank() > 1) {
        let std = (2.0 / var.dims()[1..].iter().product::<usize>() as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count()).map(|_| std * gaussian(&mut rng)).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &device).map_err(candle_err)?).map_err(|e| EvalError::Features { path: name.into(), reason: e.to_string() })?;
    }
    let params = candle_nn::ParamsAdamW { lr: options.lr, weight_decay: 1e-4, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(vm.all_vars(), params).map_err(candle_err)?;
    let mut curve = Vec::new();
    let (mut sum, mut count) = (0f32, 0usize);
    for step in 1..=options.steps {
        let lr = schedule(options, step);
        opt.set_learning_rate(lr);
        let (x, multi, classes) = batch(&train_world, ((step - 1) * options.batch) as u64, options.batch, cfg.size, cfg.frames, options.augment).map_err(candle_err)?;
        let net = ShapesNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &device)).map_err(candle_err)?;
        let (_, logits) = net.forward(&x).map_err(candle_err)?;
        let l = loss(&logits, &multi, &classes).map_err(candle_err)?;
        opt.backward_step(&l).map_err(candle_err)?;
        let value = l.to_scalar::<f32>().map_err(candle_err)?;
        if !value.is_finite() {
            return Err(EvalError::Features { path: out.to_path_buf(), reason: format!("the loss became {value} at step {step}; lower the learning rate") });
        }
        (sum, count) = (sum + value, count + 1);
        if step % 10 == 0 || step == options.steps {
            curve.push((step, sum / count as f32));
            (sum, count) = (0.0, 0);
        }
        progress(step, value);
        if stop.load(Ordering::Relaxed) {
            return Err(EvalError::Features { path: out.to_path_buf(), reason: format!("interrupted at step {step}; nothing was written (the run is short: start it again)") });
        }
    }
    let holdout_accuracy = measure(&vm, options)?;
    let report = TrainReport { options: options.clone(), loss: curve, holdout_accuracy, seconds: started.elapsed().as_secs_f64() };
    save(&vm, &report, out)?;
    Ok(report)
}

/// Warm-up then cosine decay to a tenth.
fn schedule(options: &TrainOptions, step: usize) -> f64 {
    if step <= options.warmup {
        return options.lr * step as f64 / options.warmup.max(1) as f64;
    }
    let progress = (step - options.warmup) as f64 / (options.steps - options.warmup).max(1) as f64;
    let min = options.lr / 10.0;
    min + (options.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Head accuracy on held-out-split clips of another seed (clean).
fn measure(vm: &VarMap, options: &TrainOptions) -> Result<Vec<(String, f64)>> {
    let cfg = &options.config;
    let world = world(options.seed + 1, Split::Holdout, cfg.frames)?;
    let net = ShapesNet::new(cfg, VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu)).map_err(candle_err)?;
    let mut totals: Vec<(String, f64)> = Vec::new();
    let chunk = 32;
    let mut done = 0;
    while done < options.eval_clips {
        let n = chunk.min(options.eval_clips - done);
        let (x, multi, classes) = batch(&world, done as u64, n, cfg.size, cfg.frames, false).map_err(candle_err)?;
        let (_, logits) = net.forward(&x).map_err(candle_err)?;
        for (i, (name, acc)) in head_accuracy(&logits, &multi, &classes).map_err(candle_err)?.into_iter().enumerate() {
            if totals.len() <= i {
                totals.push((name.to_string(), 0.0));
            }
            totals[i].1 += acc * n as f64;
        }
        done += n;
    }
    Ok(totals.into_iter().map(|(k, v)| (k, v / options.eval_clips.max(1) as f64)).collect())
}

fn save(vm: &VarMap, report: &TrainReport, out: &Path) -> Result<()> {
    let name = out.file_name().map_or_else(|| "features".into(), |n| n.to_string_lossy().into_owned());
    let tmp = out.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let written = (|| -> Result<()> {
        // The folder is renamed whole at the end: its files need no atomic writes of their own.
        let write = |name: &str, text: String| std::fs::write(tmp.join(name), text).map_err(io_err(&tmp));
        write("config.json", serde_json::to_string_pretty(&report.options.config).expect("serialises"))?;
        vm.save(tmp.join("model.safetensors")).map_err(candle_err)?;
        write("training.json", serde_json::to_string_pretty(report).expect("serialises"))?;
        std::fs::rename(&tmp, out).map_err(io_err(out))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_to_a_tenth() {
        let o = TrainOptions { steps: 150, warmup: 50, lr: 1e-3, ..Default::default() };
        assert!((schedule(&o, 25) - 5e-4).abs() < 1e-12);
        assert!((schedule(&o, 50) - 1e-3).abs() < 1e-12);
        // Half-way through the decay: the middle of 1e-3 and 1e-4.
        assert!((schedule(&o, 100) - 5.5e-4).abs() < 1e-9);
        assert!((schedule(&o, 150) - 1e-4).abs() < 1e-12);
    }
}
