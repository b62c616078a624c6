//! Clipping by the global gradient norm (over every parameter together).

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// The L2 norm of all gradients of `vars` together (missing gradients count as zero).
pub fn global_norm(grads: &GradStore, vars: &[Var]) -> Result<f64> {
    let mut sum = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    Ok(sum.sqrt())
}

/// Scales every gradient so that the global norm is at most `max_norm`; returns the norm before clipping.
/// A non-finite norm is returned unchanged (the caller should skip the step).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads, vars)?;
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let clipped = (g * scale)?;
                grads.insert(v.as_tensor(), clipped);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn clipping_scales_all_gradients_together() -> Result<()> {
        let d = Device::Cpu;
        let a = Var::new(&[1f32, 2.0], &d)?;
        let b = Var::new(&[3f32], &d)?;
        // loss = 3·a0 + 4·a1 + 12·b  →  gradients (3, 4) and (12): global norm 13.
        let loss = ((a.as_tensor() * Tensor::new(&[3f32, 4.0], &d)?)?.sum_all()? + (b.as_tensor() * 12.0)?.sum_all()?)?;
        let mut grads = loss.backward()?;
        let vars = [a.clone(), b.clone()];
        assert!((global_norm(&grads, &vars)? - 13.0).abs() < 1e-5);
        let before = clip_grad_norm(&mut grads, &vars, 1.3)?;
        assert!((before - 13.0).abs() < 1e-5);
        assert!((global_norm(&grads, &vars)? - 1.3).abs() < 1e-4);
        let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((ga[0] / ga[1] - 0.75).abs() < 1e-5, "direction is kept");
        // Below the limit nothing changes.
        let norm = clip_grad_norm(&mut grads, &vars, 100.0)?;
        assert!((norm - 1.3).abs() < 1e-4);
        Ok(())
    }
}
