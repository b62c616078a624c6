//! # reel-schedulers — flow-matching samplers and training noise
//!
//! [`FlowMatchEulerScheduler`] and [`UniPcScheduler`] (flow mode), built from
//! diffusers' `scheduler_config.json` and matching diffusers step for step
//! (see `tools/reference/schedulers.py` and `tests/parity.rs`); [`training`]
//! holds logit-normal timestep sampling, noising and the velocity target.
//!
//! ```no_run
//! use reel_schedulers::{Scheduler, SchedulerConfig};
//! let mut scheduler = SchedulerConfig::from_json(r#"{"_class_name": "UniPCMultistepScheduler", "flow_shift": 3.0,
//!     "prediction_type": "flow_prediction", "use_flow_sigmas": true}"#)?.build()?;
//! scheduler.set_timesteps(20, None)?;
//! # Ok::<(), reel_schedulers::SchedulerError>(())
//! ```

mod error;
mod flow_match_euler;
pub mod noise;
pub mod shift;
pub mod training;
mod unipc;

use candle_core::Tensor;
use serde::Deserialize;

pub use error::{Result, SchedulerError};
pub use flow_match_euler::{FlowMatchEulerConfig, FlowMatchEulerScheduler};
pub use unipc::{FinalSigmas, SolverType, UniPcConfig, UniPcScheduler};

/// A sampler: set the schedule, then call `step` once per timestep, in order.
pub trait Scheduler {
    /// Builds the schedule for `steps` inference steps; `mu` is the shift for dynamic shifting.
    fn set_timesteps(&mut self, steps: usize, mu: Option<f64>) -> Result<()>;
    /// The timestep to give the model at each step (`σ · num_train_timesteps`).
    fn timesteps(&self) -> &[f32];
    /// Sigmas, one more than the timesteps (the last is where sampling ends).
    fn sigmas(&self) -> &[f32];
    /// Advances `sample` by one step given the model's velocity prediction.
    fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor>;
    /// Steps taken since `set_timesteps`.
    fn step_index(&self) -> usize;
    /// Starts sampling at step `index` of the schedule instead of the first (image-to-image
    /// style: the sample given to the next `step` is already at `sigmas()[index]`). A
    /// multistep solver starts at first order there, as diffusers' `set_begin_index` does.
    fn set_begin_index(&mut self, index: usize) -> Result<()>;
}

/// The step a sampler that has taken `taken` steps of a `steps`-step schedule may begin at
/// (`Scheduler::set_begin_index`): only before the first step, and inside the schedule.
fn checked_begin_index(taken: usize, index: usize, steps: usize) -> Result<usize> {
    if taken != 0 {
        return Err(SchedulerError::Usage(format!("set_begin_index after {taken} steps; call it right after set_timesteps")));
    }
    if index >= steps {
        return Err(SchedulerError::Usage(format!("begin index {index} is past the {steps} steps set")));
    }
    Ok(index)
}

/// A `scheduler_config.json`, dispatched on diffusers' `_class_name`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "_class_name")]
pub enum SchedulerConfig {
    #[serde(rename = "FlowMatchEulerDiscreteScheduler")]
    FlowMatchEuler(FlowMatchEulerConfig),
    #[serde(rename = "UniPCMultistepScheduler")]
    UniPc(UniPcConfig),
}

impl SchedulerConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            SchedulerError::Config(format!(
                "{e} (supported _class_name: FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler)"
            ))
        })
    }

    pub fn build(self) -> Result<Box<dyn Scheduler + Send>> {
        Ok(match self {
            Self::FlowMatchEuler(c) => Box::new(FlowMatchEulerScheduler::new(c)?),
            Self::UniPc(c) => Box::new(UniPcScheduler::new(c)?),
        })
    }
}

/// `numpy.linspace(start, stop, num)`, bit for bit: `i·step + start`, the last value exactly `stop`.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_dispatch_on_class_name_and_ignore_bookkeeping_keys() {
        let c = SchedulerConfig::from_json(r#"{"_class_name":"FlowMatchEulerDiscreteScheduler","_diffusers_version":"0.33.0","shift":3.0}"#).unwrap();
        assert!(matches!(c, SchedulerConfig::FlowMatchEuler(FlowMatchEulerConfig { shift, .. }) if shift == 3.0));
        let err = SchedulerConfig::from_json(r#"{"_class_name":"DDIMScheduler"}"#).unwrap_err();
        assert!(err.to_string().contains("UniPCMultistepScheduler"), "{err}");
    }

    #[test]
    fn linspace_matches_numpy_endpoints() {
        assert_eq!(linspace(1.0, 0.0, 5), vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        assert_eq!(linspace(2.0, 3.0, 1), vec![2.0]);
    }
}
