//! Normalisations, computed in f32 whatever the weights' dtype (one of the
//! numerically fragile parts listed in docs/models.md).
//!
//! The normalisation itself is a custom op with a backward pass (candle's
//! fused CPU norms have none, so models built on them could not be trained);
//! the learned scale and shift are ordinary tensor ops.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::layers::fast_math::contiguous_f32;

/// `(x − mean) / √(var + eps)` (layer norm) or `x / √(mean(x²) + eps)` (RMS norm) over the last dimension.
#[derive(Clone, Copy, Debug)]
struct Normalize {
    centre: bool,
    eps: f32,
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        if self.centre {
            "reel-layer-normalize"
        } else {
            "reel-rms-normalize"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "normalize")?;
        let dim = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; src.len()];
        let (centre, eps) = (self.centre, self.eps);
        out.par_chunks_exact_mut(dim).zip(src.par_chunks_exact(dim)).for_each(|(dst, row)| {
            let n = dim as f32;
            let mean = if centre { row.iter().sum::<f32>() / n } else { 0.0 };
            let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            dst.iter_mut().zip(row).for_each(|(d, &v)| *d = (v - mean) * inv);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// With `y` the output and `s = √(var + eps)`:
    /// layer norm `dx = (dy − mean(dy) − y·mean(dy·y)) / s`; RMS norm `dx = (dy − y·mean(dy·y)) / s`.
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let centred = if self.centre { arg.broadcast_sub(&arg.mean_keepdim(D::Minus1)?)? } else { arg.clone() };
        let s = (centred.sqr()?.mean_keepdim(D::Minus1)? + self.eps as f64)?.sqrt()?;
        let mut g = grad_res.broadcast_sub(&res.broadcast_mul(&(grad_res * res)?.mean_keepdim(D::Minus1)?)?)?;
        if self.centre {
            g = g.broadcast_sub(&grad_res.mean_keepdim(D::Minus1)?)?;
        }
        Ok(Some(g.broadcast_div(&s)?))
    }
}

fn normalize(x: &Tensor, centre: bool, eps: f64) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(Normalize { centre, eps: eps as f32 })
    } else {
        let centred = if centre { x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)? } else { x };
        centred.broadcast_div(&(centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?)
    }
}

/// Layer norm over the last dimension; `weight`/`bias` absent means no affine transform.
pub fn layer_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let mut y = normalize(x, true, eps)?;
    if let Some(w) = weight {
        y = crate::layers::rows::mul_weight(&y, &w.to_dtype(DType::F32)?)?;
    }
    if let Some(b) = bias {
        y = crate::layers::rows::add_bias(&y, &b.to_dtype(DType::F32)?)?;
    }
    y.to_dtype(dtype)
}

/// RMS norm over the last dimension with a learned scale.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    crate::layers::rows::mul_weight(&normalize(x, false, eps)?, &weight.to_dtype(DType::F32)?)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::layers::testing::max_diff;

    #[test]
    fn layer_norm_without_affine_centres_and_scales() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 6.0]], &Device::Cpu)?;
        let y = layer_norm(&x, None, None, 0.0)?.to_vec2::<f32>()?;
        let mean: f32 = y[0].iter().sum::<f32>() / 4.0;
        let var: f32 = y[0].iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn values_and_gradients_match_candles_reference_formulas() -> Result<()> {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (3, 5, 8), &d)?)?;
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 8, &d)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 8, &d)?)?;
        let probe = Tensor::randn(0f32, 1.0, (3, 5, 8), &d)?;
        let cases: [(Tensor, Tensor); 2] = [
            (layer_norm(x.as_tensor(), Some(w.as_tensor()), Some(b.as_tensor()), 1e-5)?, candle_nn::ops::layer_norm_slow(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?),
            (rms_norm(x.as_tensor(), w.as_tensor(), 1e-6)?, candle_nn::ops::rms_norm_slow(x.as_tensor(), w.as_tensor(), 1e-6)?),
        ];
        for (ours, reference) in cases {
            assert!(max_diff(&ours, &reference) < 1e-5);
            let g1 = (&ours * &probe)?.sum_all()?.backward()?;
            let g2 = (&reference * &probe)?.sum_all()?.backward()?;
            for var in [&x, &w] {
                let diff = max_diff(g1.get(var).unwrap(), g2.get(var).unwrap());
                assert!(diff < 1e-4, "gradient differs by {diff}");
            }
        }
        Ok(())
    }
}
