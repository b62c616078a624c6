//! Per-channel operations on channels-first tensors (`[B, C, …]`), fused into one pass each
//! with a hand-written backward pass.
//!
//! Written as candle ops, the VAE's channel RMS norm is six ops whose backward passes reduce
//! over strided dimensions (the channel axis for the norm, every axis but the channel for γ
//! and a convolution's bias), which candle does element by element through index
//! arithmetic: in a VAE training step those reductions were an eighth of the time
//! (measured with `perf` on shapes-v1's VAE run). Here each is a loop over contiguous rows.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::layers::fast_math::contiguous_f32;

/// `(batch, channels, positions per channel)` of a channels-first shape.
fn planes(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("channel op: needs [B, C, …], got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// The contiguous f32 data of a tensor (copied only when it is not contiguous already).
fn data_of(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

const EPS: f32 = 1e-24;

/// `x / √(Σ_c x² + 1e-24) · γ_c · scale` over the channel axis: `F.normalize(x, dim=1)`
/// (whose `max(‖x‖, 1e-12)` this equals wherever a pixel is not zero in every channel, and
/// unlike which it has a finite gradient there) times `scale · γ`, as diffusers' `WanRMS_norm`.
pub fn channel_rms_norm(x: &Tensor, gamma: &Tensor, scale: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&gamma.flatten_all()?.contiguous()?, ChannelRmsNorm { scale: scale as f32 })
}

struct ChannelRmsNorm {
    scale: f32,
}

/// `1 / √(Σ_c x² + ε)` for every position of one batch item (`x`: `[C, S]`).
fn inverse_norms(x: &[f32], c: usize, s: usize) -> Vec<f32> {
    let mut acc = vec![0f32; s];
    for row in x.chunks_exact(s).take(c) {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v * v);
    }
    acc.iter_mut().for_each(|a| *a = 1.0 / (*a + EPS).sqrt());
    acc
}

impl CustomOp2 for ChannelRmsNorm {
    fn name(&self) -> &'static str {
        "reel-channel-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, self.name())?;
        let gamma = contiguous_f32(gs, gl, self.name())?;
        let (_, c, s) = planes(xl.shape())?;
        if gamma.len() != c {
            candle_core::bail!("channel rms norm: γ has {} values for {c} channels", gamma.len());
        }
        let mut out = vec![0f32; x.len()];
        if s > 0 {
            out.par_chunks_mut(c * s).zip(x.par_chunks(c * s)).for_each(|(y, x)| {
                let inv = inverse_norms(x, c, s);
                for ((yr, xr), &g) in y.chunks_exact_mut(s).zip(x.chunks_exact(s)).zip(gamma) {
                    let g = g * self.scale;
                    yr.iter_mut().zip(xr).zip(&inv).for_each(|((y, &x), &i)| *y = x * i * g);
                }
            });
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    /// With `x̂ = x/n`, `g' = g·γ·scale`: `dx = (g' − x̂·Σ_c g'·x̂) / n` and
    /// `dγ_c = scale · Σ_{b,s} g·x̂`.
    fn bwd(&self, x: &Tensor, gamma: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, c, s) = planes(x.shape())?;
        let xv = data_of(x)?;
        let gv = data_of(grad)?;
        let gamma_v = data_of(gamma)?;
        let mut dx = vec![0f32; xv.len()];
        let per_item: Vec<Vec<f32>> = dx
            .par_chunks_mut(c * s)
            .zip(xv.par_chunks(c * s))
            .zip(gv.par_chunks(c * s))
            .map(|((dx, x), g)| {
                let inv = inverse_norms(x, c, s);
                let mut dot = vec![0f32; s];
                let mut dgamma = vec![0f32; c];
                for ((xr, gr), (&gm, dg)) in x.chunks_exact(s).zip(g.chunks_exact(s)).zip(gamma_v.iter().zip(dgamma.iter_mut())) {
                    let k = gm * self.scale;
                    let mut acc = 0f32;
                    for (((d, &xv), &gv), &i) in dot.iter_mut().zip(xr).zip(gr).zip(&inv) {
                        let xh = xv * i;
                        *d += gv * k * xh;
                        acc += gv * xh;
                    }
                    *dg = acc * self.scale;
                }
                for ((dr, xr), (gr, &gm)) in dx.chunks_exact_mut(s).zip(x.chunks_exact(s)).zip(g.chunks_exact(s).zip(&gamma_v)) {
                    let k = gm * self.scale;
                    for ((((d, &xv), &gv), &i), &dt) in dr.iter_mut().zip(xr).zip(gr).zip(&inv).zip(&dot) {
                        *d = (gv * k - xv * i * dt) * i;
                    }
                }
                dgamma
            })
            .collect();
        let mut dgamma = vec![0f32; c];
        for item in per_item {
            dgamma.iter_mut().zip(item).for_each(|(a, b)| *a += b);
        }
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dgamma, gamma.shape(), dev)?)))
    }
}

/// `x + bias_c` over the channel axis (a convolution's bias), whose bias gradient is a
/// contiguous sum per channel.
pub fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&bias.flatten_all()?.contiguous()?, ChannelBias)
}

struct ChannelBias;

impl CustomOp2 for ChannelBias {
    fn name(&self) -> &'static str {
        "reel-channel-bias"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, self.name())?;
        let bias = contiguous_f32(bs, bl, self.name())?;
        let (_, c, s) = planes(xl.shape())?;
        if bias.len() != c {
            candle_core::bail!("channel bias: {} values for {c} channels", bias.len());
        }
        let mut out = x.to_vec();
        if s > 0 {
            out.par_chunks_mut(s).enumerate().for_each(|(row, y)| {
                let b = bias[row % c];
                y.iter_mut().for_each(|v| *v += b);
            });
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, c, s) = planes(x.shape())?;
        let g = data_of(grad)?;
        let mut db = vec![0f32; c];
        if s > 0 {
            for (row, r) in g.chunks_exact(s).enumerate() {
                db[row % c] += r.iter().sum::<f32>();
            }
        }
        Ok((Some(grad.clone()), Some(Tensor::from_vec(db, bias.shape(), x.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// The same norm from candle's own ops (the formula the fused op replaces).
    fn composite(x: &Tensor, gamma: &Tensor, scale: f64) -> Result<Tensor> {
        let norm = (x.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
        let mut shape = vec![1; x.rank()];
        shape[1] = gamma.dim(0)?;
        x.broadcast_div(&norm)?.broadcast_mul(&(gamma.reshape(shape)? * scale)?)
    }

    #[test]
    fn the_fused_norm_matches_candles_ops_and_their_gradients() -> Result<()> {
        let d = Device::Cpu;
        for dims in [vec![2, 5, 3, 4, 6], vec![3, 4, 7, 7]] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims.as_slice(), &d)?)?;
            let gamma = Var::from_tensor(&Tensor::randn(1f32, 0.5, dims[1], &d)?)?;
            let probe = Tensor::randn(0f32, 1.0, dims.as_slice(), &d)?;
            let ours = channel_rms_norm(x.as_tensor(), gamma.as_tensor(), 2.0)?;
            let theirs = composite(x.as_tensor(), gamma.as_tensor(), 2.0)?;
            assert!(max_diff(&ours, &theirs) < 1e-5);
            let g1 = (&ours * &probe)?.sum_all()?.backward()?;
            let g2 = (&theirs * &probe)?.sum_all()?.backward()?;
            for var in [&x, &gamma] {
                let diff = max_diff(g1.get(var).unwrap(), g2.get(var).unwrap());
                assert!(diff < 1e-4, "gradient differs by {diff} for {dims:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_zero_pixel_stays_finite() -> Result<()> {
        let x = Var::from_tensor(&Tensor::zeros((1, 3, 2), candle_core::DType::F32, &Device::Cpu)?)?;
        let gamma = Tensor::ones(3, candle_core::DType::F32, &Device::Cpu)?;
        let y = channel_rms_norm(x.as_tensor(), &gamma, 1.0)?;
        let g = y.sum_all()?.backward()?;
        let all: Vec<f32> = g.get(&x).unwrap().flatten_all()?.to_vec1()?;
        assert!(y.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| *v == 0.0));
        assert!(all.iter().all(|v| v.is_finite()));
        Ok(())
    }

    #[test]
    fn the_channel_bias_and_its_gradient() -> Result<()> {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &d)?)?;
        let bias = Var::from_tensor(&Tensor::new(&[1f32, -2.0, 0.5], &d)?)?;
        let probe = Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &d)?;
        let ours = add_channel_bias(x.as_tensor(), bias.as_tensor())?;
        let theirs = x.as_tensor().broadcast_add(&bias.as_tensor().reshape((1, 3, 1, 1))?)?;
        assert!(max_diff(&ours, &theirs) < 1e-6);
        let g1 = (&ours * &probe)?.sum_all()?.backward()?;
        let g2 = (&theirs * &probe)?.sum_all()?.backward()?;
        for var in [&x, &bias] {
            assert!(max_diff(g1.get(var).unwrap(), g2.get(var).unwrap()) < 1e-4);
        }
        Ok(())
    }
}
