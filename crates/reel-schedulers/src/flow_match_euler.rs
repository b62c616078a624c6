//! FlowMatchEulerDiscreteScheduler: the Euler step of a flow-matching ODE,
//! `x ← x + (σ_next − σ)·v`.
//!
//! Mirrors diffusers' `scheduling_flow_match_euler_discrete.py` number for
//! number, including its quirk of shifting twice: the training sigmas are
//! shifted at construction, the inference schedule is spaced between the
//! shifted extremes and shifted again.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SchedulerError};
use crate::shift::{ScheduleShift, TimeShiftType};
use crate::Scheduler;

/// Config keys as in diffusers' `scheduler_config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowMatchEulerConfig {
    /// Length of the training schedule.
    pub num_train_timesteps: usize,
    /// Static shift (ignored with dynamic shifting).
    pub shift: f64,
    /// Shift by a `mu` given at `set_timesteps` (resolution-dependent).
    pub use_dynamic_shifting: bool,
    pub base_shift: f64,
    pub max_shift: f64,
    pub base_image_seq_len: usize,
    pub max_image_seq_len: usize,
    /// Stretch the schedule to end at this sigma.
    pub shift_terminal: Option<f64>,
    pub time_shift_type: TimeShiftType,
    /// Not supported (inverted schedules); must be false.
    pub invert_sigmas: bool,
    /// Not supported; must be false.
    pub use_karras_sigmas: bool,
    /// Not supported; must be false.
    pub use_exponential_sigmas: bool,
    /// Not supported; must be false.
    pub use_beta_sigmas: bool,
    /// Not supported; must be false.
    pub stochastic_sampling: bool,
}

impl Default for FlowMatchEulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: 0.5,
            max_shift: 1.15,
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            shift_terminal: None,
            time_shift_type: TimeShiftType::Exponential,
            invert_sigmas: false,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            stochastic_sampling: false,
        }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct FlowMatchEulerScheduler {
    config: FlowMatchEulerConfig,
    sigma_min: f64,
    sigma_max: f64,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    step_index: usize,
}

impl FlowMatchEulerScheduler {
    pub fn new(config: FlowMatchEulerConfig) -> Result<Self> {
        for (option, on) in [
            ("invert_sigmas", config.invert_sigmas),
            ("use_karras_sigmas", config.use_karras_sigmas),
            ("use_exponential_sigmas", config.use_exponential_sigmas),
            ("use_beta_sigmas", config.use_beta_sigmas),
            ("stochastic_sampling", config.stochastic_sampling),
        ] {
            if on {
                return Err(SchedulerError::Unsupported { option, value: "true".into(), supported: "false" });
            }
        }
        if config.num_train_timesteps < 2 {
            return Err(SchedulerError::Config(format!("num_train_timesteps must be at least 2, got {}", config.num_train_timesteps)));
        }
        // The training sigmas, as diffusers' __init__ computes them (float32).
        let n = config.num_train_timesteps;
        let train_sigma = |t: f32| -> f32 {
            let s = t / n as f32;
            if config.use_dynamic_shifting {
                s
            } else {
                let shift = config.shift as f32;
                shift * s / (1.0 + (shift - 1.0) * s)
            }
        };
        let sigma_max = train_sigma(n as f32) as f64;
        let sigma_min = train_sigma(1.0) as f64;
        Ok(Self { config, sigma_min, sigma_max, timesteps: Vec::new(), sigmas: Vec::new(), step_index: 0 })
    }

    pub fn config(&self) -> &FlowMatchEulerConfig {
        &self.config
    }
}

impl Scheduler for FlowMatchEulerScheduler {
    fn set_timesteps(&mut self, steps: usize, mu: Option<f64>) -> Result<()> {
        if steps == 0 {
            return Err(SchedulerError::Usage("at least one inference step is needed".into()));
        }
        let n = self.config.num_train_timesteps as f64;
        let (start, end) = (self.sigma_max * n, self.sigma_min * n);
        let mut sigmas: Vec<f64> = crate::linspace(start, end, steps).into_iter().map(|t| t / n).collect();
        ScheduleShift {
            dynamic: self.config.use_dynamic_shifting.then_some(self.config.time_shift_type),
            shift: self.config.shift,
            terminal: self.config.shift_terminal,
        }
        .apply(&mut sigmas, mu)?;
        self.sigmas = sigmas.iter().map(|&s| s as f32).collect();
        self.timesteps = self.sigmas.iter().map(|&s| s * n as f32).collect();
        self.sigmas.push(0.0);
        self.step_index = 0;
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
        if i + 1 >= self.sigmas.len() {
            return Err(SchedulerError::Usage(format!("step {i} is past the {} steps set", self.timesteps.len())));
        }
        let dt = self.sigmas[i + 1] - self.sigmas[i];
        let sample = sample.to_dtype(DType::F32)?;
        let velocity = model_output.to_dtype(DType::F32)?;
        let prev = (sample + velocity.affine(dt as f64, 0.0)?)?;
        self.step_index += 1;
        Ok(prev.to_dtype(model_output.dtype())?)
    }

    fn step_index(&self) -> usize {
        self.step_index
    }

    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        self.step_index = crate::checked_begin_index(self.step_index, index, self.timesteps.len())?;
        Ok(())
    }
}
