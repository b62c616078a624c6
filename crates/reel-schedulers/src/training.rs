//! Training-time noise for flow matching: timestep sampling, noising and the velocity target.
//!
//! With `x_t = (1 − σ)·x0 + σ·ε`, the model learns the velocity `v = ε − x0`,
//! which the samplers integrate from σ = 1 (noise) to σ = 0 (data).

use candle_core::{Result, Tensor};

use crate::shift::shift_sigma;

/// A standard normal draw from two uniforms in (0, 1] (Box–Muller).
fn normal(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Logit-normal sigma sampling (SD3's "logit_normal" weighting) with a static shift:
/// `σ = shift(sigmoid(mean + std·n))`, `n ~ N(0, 1)`. `uniform` supplies pairs of
/// uniforms in (0, 1], so the caller's seeded RNG decides the draw.
pub fn sample_logit_normal_sigmas(count: usize, mean: f64, std: f64, shift: f64, mut uniform: impl FnMut() -> f64) -> Vec<f64> {
    (0..count)
        .map(|_| {
            let n = normal(uniform().max(f64::MIN_POSITIVE), uniform());
            let u = 1.0 / (1.0 + (-(mean + std * n)).exp());
            shift_sigma(shift, u)
        })
        .collect()
}

/// Per-example sigmas shaped to broadcast over `[B, …]` samples.
fn per_example(sigmas: &Tensor, rank: usize) -> Result<Tensor> {
    let b = sigmas.dims1()?;
    let mut shape = vec![b];
    shape.resize(rank, 1);
    sigmas.reshape(shape)
}

/// `x_t = (1 − σ)·x0 + σ·ε`, with one σ per example (`sigmas`: `[B]`).
pub fn add_noise(x0: &Tensor, noise: &Tensor, sigmas: &Tensor) -> Result<Tensor> {
    let s = per_example(&sigmas.to_dtype(x0.dtype())?, x0.rank())?;
    let keep = s.affine(-1.0, 1.0)?;
    x0.broadcast_mul(&keep)? + noise.broadcast_mul(&s)?
}

/// The flow-matching target `v = ε − x0`.
pub fn velocity_target(x0: &Tensor, noise: &Tensor) -> Result<Tensor> {
    noise - x0
}

/// The model's timestep input for a sigma: `σ · num_train_timesteps`.
pub fn sigma_to_timestep(sigma: f64, num_train_timesteps: usize) -> f64 {
    sigma * num_train_timesteps as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn noising_interpolates_between_data_and_noise() -> Result<()> {
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev)?;
        let eps = Tensor::new(&[[-1f32, 0.0], [1.0, 0.0]], &dev)?;
        let xt = add_noise(&x0, &eps, &Tensor::new(&[0f32, 0.25], &dev)?)?;
        assert_eq!(xt.to_vec2::<f32>()?, vec![vec![1.0, 2.0], vec![2.5, 3.0]]);
        // Integrating the velocity from σ back to 0 recovers x0.
        let v = velocity_target(&x0, &eps)?;
        let back = (xt.get(1)? - v.get(1)?.affine(0.25, 0.0)?)?;
        assert_eq!(back.to_vec1::<f32>()?, vec![3.0, 4.0]);
        Ok(())
    }

    #[test]
    fn logit_normal_sigmas_are_in_range_and_shift_moves_them_up() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        };
        let plain = sample_logit_normal_sigmas(4000, 0.0, 1.0, 1.0, &mut uniform);
        let shifted = sample_logit_normal_sigmas(4000, 0.0, 1.0, 3.0, &mut uniform);
        assert!(plain.iter().chain(&shifted).all(|&s| s > 0.0 && s < 1.0));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean(&plain) - 0.5).abs() < 0.02, "logit-normal(0, 1) is centred on 0.5: {}", mean(&plain));
        assert!(mean(&shifted) > mean(&plain) + 0.1);
    }
}
