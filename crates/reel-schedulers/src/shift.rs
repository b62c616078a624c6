//! Timestep shifting shared by the samplers and training.

use serde::{Deserialize, Serialize};

/// How a resolution-dependent shift `mu` bends the schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShiftType {
    #[default]
    Exponential,
    Linear,
}

/// The static shift `s·σ / (1 + (s − 1)·σ)` (Esser et al. 2024; Wan's `flow_shift`).
pub fn shift_sigma(shift: f64, sigma: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

/// The dynamic shift used with `use_dynamic_shifting` (`sigma` is the exponent, 1.0 in practice).
pub fn time_shift(kind: TimeShiftType, mu: f64, sigma: f64, t: f64) -> f64 {
    match kind {
        TimeShiftType::Exponential => mu.exp() / (mu.exp() + (1.0 / t - 1.0).powf(sigma)),
        TimeShiftType::Linear => mu / (mu + (1.0 / t - 1.0).powf(sigma)),
    }
}

/// `mu` for a sequence length, interpolated linearly between (base_len, base_shift) and (max_len, max_shift).
pub fn calculate_shift(seq_len: usize, base_len: usize, max_len: usize, base_shift: f64, max_shift: f64) -> f64 {
    let m = (max_shift - base_shift) / (max_len as f64 - base_len as f64);
    let b = base_shift - m * base_len as f64;
    seq_len as f64 * m + b
}

/// Stretches a schedule so that it ends at `terminal` (LTX-Video's `shift_terminal`).
pub fn stretch_to_terminal(sigmas: &mut [f64], terminal: f64) {
    if let Some(&last) = sigmas.last() {
        let scale = (1.0 - last) / (1.0 - terminal);
        for s in sigmas.iter_mut() {
            *s = 1.0 - (1.0 - *s) / scale;
        }
    }
}

/// How a scheduler bends its inference sigmas: the part of a `set_timesteps` that
/// FlowMatch Euler and UniPC share.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScheduleShift {
    pub dynamic: Option<TimeShiftType>,
    pub shift: f64,
    pub terminal: Option<f64>,
}

impl ScheduleShift {
    /// Applies the dynamic (with `mu`) or static shift, then the terminal stretch.
    pub(crate) fn apply(&self, sigmas: &mut [f64], mu: Option<f64>) -> crate::Result<()> {
        match self.dynamic {
            Some(kind) => {
                let mu = mu.ok_or_else(|| crate::SchedulerError::Usage("this scheduler uses dynamic shifting: pass `mu`".into()))?;
                sigmas.iter_mut().for_each(|s| *s = time_shift(kind, mu, 1.0, *s));
            }
            None => sigmas.iter_mut().for_each(|s| *s = shift_sigma(self.shift, *s)),
        }
        if let Some(terminal) = self.terminal {
            stretch_to_terminal(sigmas, terminal);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_keeps_the_ends_and_pushes_the_middle_up() {
        assert_eq!(shift_sigma(3.0, 1.0), 1.0);
        assert_eq!(shift_sigma(3.0, 0.0), 0.0);
        assert!((shift_sigma(3.0, 0.5) - 0.75).abs() < 1e-12);
        assert!((calculate_shift(256, 256, 4096, 0.5, 1.15) - 0.5).abs() < 1e-12);
        assert!((calculate_shift(4096, 256, 4096, 0.5, 1.15) - 1.15).abs() < 1e-12);
    }
}
