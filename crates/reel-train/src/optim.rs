//! AdamW (PyTorch's update, per-parameter step counts) over named parameters, with its
//! state exposed for checkpoints; gradient norm and clipping over flat gradient vectors.
//!
//! Gradients arrive as flat `f32` vectors (one per trainable parameter, in a fixed order) so
//! that accumulation, the data-parallel all-reduce, clipping and the update are plain
//! deterministic loops.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};

use crate::config::OptimizerConfig;
use crate::error::Result;

#[derive(Clone, Debug, Default)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct AdamW {
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    state: HashMap<String, Moments>,
}

impl AdamW {
    pub fn new(cfg: &OptimizerConfig) -> Self {
        Self { betas: cfg.betas, eps: cfg.eps, weight_decay: cfg.weight_decay, state: HashMap::new() }
    }

    /// One update of `var` (named `name`) with gradient `grad` at learning rate `lr`:
    /// `p ← p − lr·wd·p; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    ///  p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + eps)`.
    pub fn update(&mut self, name: &str, var: &Var, grad: &[f32], lr: f64) -> Result<()> {
        let mut p: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
        let s = self.state.entry(name.to_string()).or_default();
        if s.m.is_empty() {
            s.m = vec![0.0; p.len()];
            s.v = vec![0.0; p.len()];
        }
        s.step += 1;
        let [b1, b2] = self.betas;
        let bc1 = 1.0 - b1.powi(s.step as i32);
        let bc2_sqrt = (1.0 - b2.powi(s.step as i32)).sqrt();
        let step_size = (lr / bc1) as f32;
        let decay = (1.0 - lr * self.weight_decay) as f32;
        let (b1, b2, eps) = (b1 as f32, b2 as f32, self.eps as f32);
        let bc2_sqrt = bc2_sqrt as f32;
        for i in 0..p.len() {
            let g = grad[i];
            p[i] *= decay;
            s.m[i] = b1 * s.m[i] + (1.0 - b1) * g;
            s.v[i] = b2 * s.v[i] + (1.0 - b2) * g * g;
            let denom = s.v[i].sqrt() / bc2_sqrt + eps;
            p[i] -= step_size * s.m[i] / denom;
        }
        var.set(&Tensor::from_vec(p, var.shape(), var.device())?)?;
        Ok(())
    }

    /// `m.NAME` / `v.NAME` tensors and per-parameter step counts, for a checkpoint.
    pub fn state(&self) -> Result<(HashMap<String, Tensor>, HashMap<String, u64>)> {
        let mut tensors = HashMap::new();
        let mut steps = HashMap::new();
        for (name, s) in &self.state {
            tensors.insert(format!("m.{name}"), Tensor::from_slice(&s.m, s.m.len(), &Device::Cpu)?);
            tensors.insert(format!("v.{name}"), Tensor::from_slice(&s.v, s.v.len(), &Device::Cpu)?);
            steps.insert(name.clone(), s.step);
        }
        Ok((tensors, steps))
    }

    /// Restores what [`Self::state`] returned.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: &HashMap<String, u64>) -> Result<()> {
        self.state.clear();
        for (name, &step) in steps {
            let get = |k: String| -> Result<Vec<f32>> {
                Ok(tensors.get(&k).ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks '{k}'")))?.to_vec1()?)
            };
            self.state.insert(name.clone(), Moments { m: get(format!("m.{name}"))?, v: get(format!("v.{name}"))?, step });
        }
        Ok(())
    }
}

/// The global L2 norm of all gradients.
pub fn global_norm(grads: &[Vec<f32>]) -> f64 {
    grads.iter().flat_map(|g| g.iter()).map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
}

/// Scales every gradient by `max_norm / norm` when the global norm exceeds `max_norm`
/// (0 = no clipping); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        grads.iter_mut().flat_map(|g| g.iter_mut()).for_each(|x| *x *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_adamw_steps_by_hand() {
        // p = 1, g = 0.5 twice, lr 0.1, wd 0.1, betas (0.9, 0.999), eps 1e-8 — computed in f64:
        let cfg = OptimizerConfig { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.1, grad_clip: 0.0 };
        let var = Var::from_vec(vec![1f32], 1, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(&cfg);
        let (mut p, mut m, mut v) = (1f64, 0f64, 0f64);
        for t in 1..=2 {
            opt.update("w", &var, &[0.5], 0.1).unwrap();
            p *= 1.0 - 0.1 * 0.1;
            m = 0.9 * m + 0.1 * 0.5;
            v = 0.999 * v + 0.001 * 0.25;
            let denom = v.sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8;
            p -= 0.1 / (1.0 - 0.9f64.powi(t)) * m / denom;
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - p).abs() < 5e-6, "{got} vs {p}");
        // The state round-trips.
        let (tensors, steps) = opt.state().unwrap();
        let mut other = AdamW::new(&cfg);
        other.load_state(&tensors, &steps).unwrap();
        assert_eq!(other.state["w"].m, opt.state["w"].m);
        assert_eq!(steps["w"], 2);
    }

    #[test]
    fn clipping_scales_to_the_limit() {
        let mut g = vec![vec![3.0f32], vec![4.0]];
        assert_eq!(clip_grad_norm(&mut g, 10.0), 5.0);
        assert_eq!(g, vec![vec![3.0], vec![4.0]]);
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        assert!((global_norm(&g) - 1.0).abs() < 1e-5);
    }
}
