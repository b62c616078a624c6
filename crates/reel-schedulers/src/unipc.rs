//! UniPCMultistepScheduler in flow mode (`use_flow_sigmas`, `flow_prediction`):
//! the predictor-corrector sampler Wan2.1 ships with (Zhao et al. 2023,
//! "UniPC: A Unified Predictor-Corrector Framework").
//!
//! Mirrors diffusers' `scheduling_unipc_multistep.py` for the flow
//! configuration, step for step: the B(h) variants bh1/bh2, multistep orders
//! with warm-up, `lower_order_final`, `disable_corrector`, and timesteps
//! truncated to integers as diffusers stores them (`int64`).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SchedulerError};
use crate::shift::{ScheduleShift, TimeShiftType};
use crate::Scheduler;

/// B(h) in the UniPC update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverType {
    Bh1,
    #[default]
    Bh2,
}

/// The sigma after the last step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalSigmas {
    #[default]
    Zero,
    SigmaMin,
}

/// Config keys as in diffusers' `scheduler_config.json` (Wan2.1 ships `flow_shift` 3.0 or 5.0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniPcConfig {
    pub num_train_timesteps: usize,
    /// 1 (no history) ..= 3 in practice.
    pub solver_order: usize,
    /// Must be `flow_prediction`.
    pub prediction_type: String,
    /// Must be true.
    pub use_flow_sigmas: bool,
    pub flow_shift: f64,
    pub solver_type: SolverType,
    /// Use lower orders on the last steps (stabler with few steps).
    pub lower_order_final: bool,
    /// Steps on which the corrector is skipped.
    pub disable_corrector: Vec<usize>,
    pub final_sigmas_type: FinalSigmas,
    /// Must be true (data prediction).
    pub predict_x0: bool,
    pub use_dynamic_shifting: bool,
    pub time_shift_type: TimeShiftType,
    pub shift_terminal: Option<f64>,
    /// Not supported; must be false.
    pub thresholding: bool,
    /// Not supported; must be false.
    pub use_karras_sigmas: bool,
    /// Not supported; must be false.
    pub use_exponential_sigmas: bool,
    /// Not supported; must be false.
    pub use_beta_sigmas: bool,
}

impl Default for UniPcConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            solver_order: 2,
            prediction_type: "flow_prediction".into(),
            use_flow_sigmas: true,
            flow_shift: 1.0,
            solver_type: SolverType::Bh2,
            lower_order_final: true,
            disable_corrector: Vec::new(),
            final_sigmas_type: FinalSigmas::Zero,
            predict_x0: true,
            use_dynamic_shifting: false,
            time_shift_type: TimeShiftType::Exponential,
            shift_terminal: None,
            thresholding: false,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
        }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct UniPcScheduler {
    config: UniPcConfig,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    step_index: usize,
    /// Converted (x0) model outputs of the last `solver_order` steps, oldest first.
    model_outputs: Vec<Option<Tensor>>,
    lower_order_nums: usize,
    last_sample: Option<Tensor>,
    this_order: usize,
}

/// `log(α) − log(σ)` for a flow sigma (α = 1 − σ), in f32 as diffusers computes it.
fn lambda(sigma: f32) -> f32 {
    (1.0 - sigma).ln() - sigma.ln()
}

/// Solves the small dense system `a·x = b` (Gaussian elimination with partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).expect("non-empty");
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let (upper, lower) = a.split_at_mut(row);
            for (x, p) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// The coefficients shared by predictor and corrector: (R rows, b, h_phi_1, B_h).
struct Coefficients {
    rks: Vec<f32>,
    b: Vec<f32>,
    h_phi_1: f32,
    b_h: f32,
}

fn coefficients(h: f32, rks: Vec<f32>, order: usize, solver: SolverType) -> Coefficients {
    // predict_x0: hh = −h.
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0f32;
    let b_h = match solver {
        SolverType::Bh1 => hh,
        SolverType::Bh2 => hh.exp_m1(),
    };
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f32;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    Coefficients { rks, b, h_phi_1, b_h }
}

fn r_matrix(rks: &[f32], size: usize) -> Vec<Vec<f64>> {
    (0..size).map(|i| rks[..size].iter().map(|&r| (r as f64).powi(i as i32)).collect()).collect()
}

impl UniPcScheduler {
    pub fn new(config: UniPcConfig) -> Result<Self> {
        if !config.use_flow_sigmas {
            return Err(SchedulerError::Unsupported { option: "use_flow_sigmas", value: "false".into(), supported: "true (flow matching)" });
        }
        if config.prediction_type != "flow_prediction" {
            return Err(SchedulerError::Unsupported {
                option: "prediction_type",
                value: config.prediction_type.clone(),
                supported: "flow_prediction",
            });
        }
        if !config.predict_x0 {
            return Err(SchedulerError::Unsupported { option: "predict_x0", value: "false".into(), supported: "true" });
        }
        for (option, on) in [
            ("thresholding", config.thresholding),
            ("use_karras_sigmas", config.use_karras_sigmas),
            ("use_exponential_sigmas", config.use_exponential_sigmas),
            ("use_beta_sigmas", config.use_beta_sigmas),
        ] {
            if on {
                return Err(SchedulerError::Unsupported { option, value: "true".into(), supported: "false" });
            }
        }
        if config.solver_order == 0 {
            return Err(SchedulerError::Config("solver_order must be at least 1".into()));
        }
        let order = config.solver_order;
        Ok(Self {
            config,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            step_index: 0,
            model_outputs: vec![None; order],
            lower_order_nums: 0,
            last_sample: None,
            this_order: 0,
        })
    }

    pub fn config(&self) -> &UniPcConfig {
        &self.config
    }

    /// The corrector: recomputes the current sample from the previous one with the new model output (UniC, bh update).
    fn corrector(&self, model_t: &Tensor, last_sample: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.history(0)?;
        let (sigma_t, sigma_s0) = (self.sigmas[i], self.sigmas[i - 1]);
        let (alpha_t, lambda_t, lambda_s0) = (1.0 - sigma_t, lambda(sigma_t), lambda(sigma_s0));
        let h = lambda_t - lambda_s0;
        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for k in 1..order {
            let rk = (lambda(self.sigmas[i - (k + 1)]) - lambda_s0) / h;
            rks.push(rk);
            d1s.push(((self.history(k)? - m0)?.affine(1.0 / rk as f64, 0.0))?);
        }
        rks.push(1.0);
        let c = coefficients(h, rks, order, self.config.solver_type);
        let rhos: Vec<f32> = if order == 1 {
            vec![0.5]
        } else {
            solve(r_matrix(&c.rks, order), c.b.iter().map(|&v| v as f64).collect()).into_iter().map(|v| v as f32).collect()
        };
        let x_t_ = (last_sample.affine((sigma_t / sigma_s0) as f64, 0.0)? - m0.affine((alpha_t * c.h_phi_1) as f64, 0.0)?)?;
        let mut correction = (model_t - m0)?.affine(rhos[order - 1] as f64, 0.0)?;
        for (k, d1) in d1s.iter().enumerate() {
            correction = (correction + d1.affine(rhos[k] as f64, 0.0)?)?;
        }
        Ok((x_t_ - correction.affine((alpha_t * c.b_h) as f64, 0.0)?)?)
    }

    /// The predictor: the next sample from the history (UniP, bh update).
    fn predictor(&self, sample: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.history(0)?;
        let (sigma_t, sigma_s0) = (self.sigmas[i + 1], self.sigmas[i]);
        let (alpha_t, lambda_t, lambda_s0) = (1.0 - sigma_t, lambda(sigma_t), lambda(sigma_s0));
        let h = lambda_t - lambda_s0;
        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for k in 1..order {
            let rk = (lambda(self.sigmas[i - k]) - lambda_s0) / h;
            rks.push(rk);
            d1s.push(((self.history(k)? - m0)?.affine(1.0 / rk as f64, 0.0))?);
        }
        rks.push(1.0);
        let c = coefficients(h, rks, order, self.config.solver_type);
        let x_t_ = (sample.affine((sigma_t / sigma_s0) as f64, 0.0)? - m0.affine((alpha_t * c.h_phi_1) as f64, 0.0)?)?;
        if d1s.is_empty() {
            return Ok(x_t_);
        }
        let rhos: Vec<f32> = if order == 2 {
            vec![0.5]
        } else {
            let size = order - 1;
            solve(r_matrix(&c.rks, size), c.b[..size].iter().map(|&v| v as f64).collect()).into_iter().map(|v| v as f32).collect()
        };
        let mut residual = d1s[0].affine(rhos[0] as f64, 0.0)?;
        for (k, d1) in d1s.iter().enumerate().skip(1) {
            residual = (residual + d1.affine(rhos[k] as f64, 0.0)?)?;
        }
        Ok((x_t_ - residual.affine((alpha_t * c.b_h) as f64, 0.0)?)?)
    }

    /// The converted model output `k` steps back (0 = newest).
    fn history(&self, k: usize) -> Result<&Tensor> {
        let n = self.model_outputs.len();
        self.model_outputs[n - 1 - k].as_ref().ok_or_else(|| SchedulerError::Usage("UniPC history is shorter than its order".into()))
    }
}

impl Scheduler for UniPcScheduler {
    fn set_timesteps(&mut self, steps: usize, mu: Option<f64>) -> Result<()> {
        if steps == 0 {
            return Err(SchedulerError::Usage("at least one inference step is needed".into()));
        }
        let n = self.config.num_train_timesteps as f64;
        let mut sigmas = crate::linspace(1.0, 1.0 / n, steps + 1);
        sigmas.pop();
        ScheduleShift {
            dynamic: self.config.use_dynamic_shifting.then_some(self.config.time_shift_type),
            shift: self.config.flow_shift,
            terminal: self.config.shift_terminal,
        }
        .apply(&mut sigmas, mu)?;
        if (sigmas[0] - 1.0).abs() < 1e-6 {
            sigmas[0] -= 1e-6;
        }
        // diffusers keeps these timesteps as int64: truncated toward zero.
        self.timesteps = sigmas.iter().map(|&s| (s * n).trunc() as f32).collect();
        let last = match self.config.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => *sigmas.last().expect("steps > 0"),
        };
        sigmas.push(last);
        self.sigmas = sigmas.iter().map(|&s| s as f32).collect();
        self.step_index = 0;
        self.model_outputs = vec![None; self.config.solver_order];
        self.lower_order_nums = 0;
        self.last_sample = None;
        self.this_order = 0;
        Ok(())
    }

    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        let i = self.step_index;
        if i >= self.timesteps.len() {
            return Err(SchedulerError::Usage(format!("step {i} is past the {} steps set", self.timesteps.len())));
        }
        let dtype = sample.dtype();
        let sample = sample.to_dtype(DType::F32)?;
        // Flow prediction → data prediction: x0 = x − σ·v.
        let converted = (&sample - model_output.to_dtype(DType::F32)?.affine(self.sigmas[i] as f64, 0.0)?)?;
        let use_corrector = i > 0 && !self.config.disable_corrector.contains(&(i - 1)) && self.last_sample.is_some();
        let sample = match (&self.last_sample, use_corrector) {
            (Some(last), true) => self.corrector(&converted, last, self.this_order)?,
            _ => sample,
        };
        self.model_outputs.remove(0);
        self.model_outputs.push(Some(converted));
        let order = if self.config.lower_order_final {
            self.config.solver_order.min(self.timesteps.len() - i)
        } else {
            self.config.solver_order
        };
        self.this_order = order.min(self.lower_order_nums + 1);
        self.last_sample = Some(sample.clone());
        let prev = self.predictor(&sample, self.this_order)?;
        if self.lower_order_nums < self.config.solver_order {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        Ok(prev.to_dtype(dtype)?)
    }

    fn step_index(&self) -> usize {
        self.step_index
    }

    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        self.step_index = crate::checked_begin_index(self.step_index, index, self.timesteps.len())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_handles_pivoting() {
        let x = solve(vec![vec![0.0, 1.0], vec![2.0, 0.0]], vec![3.0, 4.0]);
        assert!((x[0] - 2.0).abs() < 1e-12 && (x[1] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn unsupported_configs_are_named() {
        let err = UniPcScheduler::new(UniPcConfig { prediction_type: "epsilon".into(), ..UniPcConfig::default() }).unwrap_err();
        assert!(err.to_string().contains("prediction_type"), "{err}");
    }
}
