//! Timestep and condition embeddings (diffusers' `Timesteps`, `TimestepEmbedding`,
//! `PixArtAlphaTextProjection`), with diffusers' weight names.

use candle_core::{DType, Result, Tensor};
use crate::layers::rows::{linear, Linear};
use candle_nn::{Module, VarBuilder};

/// Sinusoidal embedding of `[B]` timesteps into `[B, dim]`, `[cos | sin]`
/// (diffusers `get_timestep_embedding` with `flip_sin_to_cos=True`, shift 0).
pub fn timestep_sinusoids(timesteps: &Tensor, dim: usize) -> Result<Tensor> {
    let device = timesteps.device();
    let half = dim / 2;
    // As torch computes it: f32 arithmetic, then exp.
    let freqs: Vec<f32> = (0..half).map(|i| ((-(10000f64.ln()) as f32 * i as f32) / half as f32).exp()).collect();
    let freqs = Tensor::new(freqs.as_slice(), device)?;
    let args = timesteps.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs.unsqueeze(0)?)?;
    let mut emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?;
    if dim % 2 == 1 {
        emb = emb.pad_with_zeros(1, 0, 1)?;
    }
    Ok(emb)
}

/// `linear_1 → SiLU → linear_2` (diffusers `TimestepEmbedding`).
#[derive(Clone, Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(in_channels: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { linear_1: linear(in_channels, dim, vb.pp("linear_1"))?, linear_2: linear(dim, dim, vb.pp("linear_2"))? })
    }

    /// Like [`Self::new`], but fresh weights of the output layer start at zero, so a newly
    /// added embedding changes nothing until trained (loaded weights are used as stored).
    pub fn zero_initialised(in_channels: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let out = vb.pp("linear_2");
        let zero = candle_nn::Init::Const(0.0);
        let linear_2 = Linear::new(out.get_with_hints((dim, dim), "weight", zero)?, Some(out.get_with_hints(dim, "bias", zero)?));
        Ok(Self { linear_1: linear(in_channels, dim, vb.pp("linear_1"))?, linear_2 })
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}

/// `linear_1 → GELU(tanh) → linear_2` (diffusers `PixArtAlphaTextProjection`, `act_fn="gelu_tanh"`).
#[derive(Clone, Debug)]
pub struct TextProjection {
    linear_1: Linear,
    linear_2: Linear,
}

impl TextProjection {
    pub fn new(in_features: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { linear_1: linear(in_features, hidden, vb.pp("linear_1"))?, linear_2: linear(hidden, hidden, vb.pp("linear_2"))? })
    }
}

impl Module for TextProjection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&crate::layers::fast_math::gelu_tanh(&self.linear_1.forward(x)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sinusoids_start_with_cos_of_zero() -> Result<()> {
        let t = Tensor::new(&[0f32, 1.0], &Device::Cpu)?;
        let e = timestep_sinusoids(&t, 8)?.to_vec2::<f32>()?;
        assert_eq!(&e[0][..4], &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(&e[0][4..], &[0.0, 0.0, 0.0, 0.0]);
        assert!((e[1][0] - 1f32.cos()).abs() < 1e-6, "first frequency is 1");
        Ok(())
    }
}
