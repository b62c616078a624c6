//! Learning-rate schedules: linear warm-up, then constant or cosine decay to a floor.

use serde::{Deserialize, Serialize};

/// What the learning rate does after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Constant,
    Cosine,
}

/// `lr(step)` for steps counted from 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Steps of linear warm-up from `lr / warmup_steps`.
    pub warmup_steps: u64,
    /// Total steps (the cosine reaches `min_lr` here and stays there).
    pub total_steps: u64,
    pub min_lr: f64,
    pub decay: Decay,
}

impl LrSchedule {
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = LrSchedule { lr: 1e-3, warmup_steps: 10, total_steps: 110, min_lr: 1e-5, decay: Decay::Cosine };
        assert!((s.at(0) - 1e-4).abs() < 1e-12);
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!((s.at(10) - 1e-3).abs() < 1e-12, "peak right after warm-up");
        assert!((s.at(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12, "half way is the mid-point");
        assert!((s.at(110) - 1e-5).abs() < 1e-12);
        assert!((s.at(500) - 1e-5).abs() < 1e-12, "stays at the floor");
        assert!((0..110).all(|i| s.at(i + 11) <= s.at(i + 10) + 1e-15), "monotone after warm-up");
        let c = LrSchedule { decay: Decay::Constant, ..s };
        assert_eq!(c.at(100), 1e-3);
    }
}
