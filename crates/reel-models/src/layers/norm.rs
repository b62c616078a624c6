//! Normalisations, computed in f32 whatever the weights' dtype (one of the
//! numerically fragile parts listed in docs/models.md).

use candle_core::{DType, Result, Tensor, D};

/// Layer norm over the last dimension; `weight`/`bias` absent means no affine transform.
pub fn layer_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let size = x.dim(D::Minus1)?;
    let ones;
    let zeros;
    let w = match weight {
        Some(w) => w.to_dtype(DType::F32)?,
        None => {
            ones = Tensor::ones(size, DType::F32, x.device())?;
            ones
        }
    };
    let b = match bias {
        Some(b) => b.to_dtype(DType::F32)?,
        None => {
            zeros = Tensor::zeros(size, DType::F32, x.device())?;
            zeros
        }
    };
    candle_nn::ops::layer_norm(&x, &w, &b, eps as f32)?.to_dtype(dtype)
}

/// RMS norm over the last dimension with a learned scale.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    candle_nn::ops::rms_norm(&x, &weight.to_dtype(DType::F32)?, eps as f32)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layer_norm_without_affine_centres_and_scales() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2.0, 3.0, 6.0]], &Device::Cpu)?;
        let y = layer_norm(&x, None, None, 0.0)?.to_vec2::<f32>()?;
        let mean: f32 = y[0].iter().sum::<f32>() / 4.0;
        let var: f32 = y[0].iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        Ok(())
    }
}
