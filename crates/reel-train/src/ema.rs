//! An exponential moving average of the weights (what a trained model is usually exported with).

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

/// `shadow ← decay·shadow + (1 − decay)·weight` after every step, with the usual warm-up
/// `decay_t = min(decay, (1 + t) / (10 + t))` so early averages are not dominated by the initialisation.
/// Computed as `shadow + (1 − decay)·(weight − shadow)`, so a weight that does not change (a
/// frozen one) keeps an average bit-identical to it.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    updates: u64,
    shadow: HashMap<String, Tensor>,
}

impl Ema {
    /// Starts from the current weights.
    pub fn new(vars: &HashMap<String, Var>, decay: f64) -> Result<Self> {
        let shadow = vars.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().detach().copy()?))).collect::<Result<_>>()?;
        Ok(Self { decay, updates: 0, shadow })
    }

    pub fn decay_now(&self) -> f64 {
        self.decay.min((1.0 + self.updates as f64) / (10.0 + self.updates as f64))
    }

    pub fn update(&mut self, vars: &HashMap<String, Var>) -> Result<()> {
        let d = self.decay_now();
        for (name, var) in vars {
            if let Some(s) = self.shadow.get_mut(name) {
                *s = (&*s + ((var.as_tensor().detach() - &*s)? * (1.0 - d))?)?;
            }
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged weights, by parameter name (for saving or evaluation).
    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.shadow
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Restores a checkpointed average: every averaged weight must be present in `shadow`.
    pub fn restore(&mut self, shadow: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        for (name, s) in self.shadow.iter_mut() {
            *s = shadow.get(name).ok_or_else(|| candle_core::Error::Msg(format!("EMA state lacks '{name}'")))?.clone();
        }
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_average_trails_the_weights_with_warmup() -> Result<()> {
        let d = Device::Cpu;
        let v = Var::new(&[0f32], &d)?;
        let vars: HashMap<String, Var> = [("w".to_string(), v.clone())].into();
        let mut ema = Ema::new(&vars, 0.9)?;
        assert!((ema.decay_now() - 0.1).abs() < 1e-12, "first decay is 1/10");
        v.set(&Tensor::new(&[10f32], &d)?)?;
        ema.update(&vars)?;
        let w = ema.weights()["w"].to_vec1::<f32>()?[0];
        assert!((w - 9.0).abs() < 1e-5, "0.1·0 + 0.9·10 = {w}");
        for _ in 0..200 {
            ema.update(&vars)?;
        }
        let w = ema.weights()["w"].to_vec1::<f32>()?[0];
        assert!((w - 10.0).abs() < 1e-3, "converges to a constant weight: {w}");
        assert_eq!(ema.updates(), 201);
        assert_eq!(ema.decay_now(), 0.9);
        Ok(())
    }

    #[test]
    fn an_unchanged_weight_keeps_an_identical_average() -> Result<()> {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 3.1).collect();
        let v = Var::new(values.as_slice(), &Device::Cpu)?;
        let vars: HashMap<String, Var> = [("frozen".to_string(), v)].into();
        let mut ema = Ema::new(&vars, 0.995)?;
        for _ in 0..500 {
            ema.update(&vars)?;
        }
        assert_eq!(ema.weights()["frozen"].to_vec1::<f32>()?, values);
        Ok(())
    }
}
