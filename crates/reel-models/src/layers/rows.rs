//! Per-feature operations on channels-last activations (`[…, D]`, a row per token), fused
//! with hand-written backward passes: a linear layer's bias and a norm's scale (through
//! [`crate::layers::channel`]'s per-axis ops), and the Wan blocks' modulation
//! (`x·(1 + scale) + shift`) and gated residual (`x + y·gate`) with one vector per batch item.
//!
//! Written with candle's broadcasting ops, their backward passes reduce over leading
//! dimensions (every row for a bias, the tokens for a modulation vector), which candle's CPU
//! backend does element by element with index arithmetic: in a transformer training step
//! those reductions were an eighth of the time (`perf`, shapes-v1's transformer). Here each
//! is a sum of contiguous rows. Inputs other than f32 fall back to the broadcasting ops.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::layers::channel::{add_along, channel_sums, mul_along};
use crate::layers::fast_math::{contiguous_f32, f32_vec};

// ---------------------------------------------------------------- bias and scale

/// `x + bias` over the last dimension.
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    add_along(x, bias, x.rank().saturating_sub(1))
}

/// `x · weight` over the last dimension (a norm's learned scale).
pub fn mul_weight(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    mul_along(x, weight, x.rank().saturating_sub(1))
}

/// candle's `Linear` whose bias is added by [`add_bias`] (same weights, names and
/// initialisation as `candle_nn::linear`).
#[derive(Clone, Debug)]
pub struct Linear {
    inner: candle_nn::Linear,
    bias: Option<Tensor>,
}

impl Linear {
    /// From a weight `[out, in]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { inner: candle_nn::Linear::new(weight, None), bias }
    }

    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

/// A linear layer with bias: `weight` `[out, in]`, `bias` `[out]`.
pub fn linear(in_dim: usize, out_dim: usize, vb: candle_nn::VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(Linear { inner: candle_nn::Linear::new(l.weight().clone(), None), bias: l.bias().cloned() })
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        match &self.bias {
            Some(b) => add_bias(&y, b),
            None => Ok(y),
        }
    }
}

// ---------------------------------------------------------------- modulation

/// `[B, N, D]` with `[B, 1, D]` vectors: the shapes the fused ops take.
fn per_item(x: &Shape, v: &Shape) -> Result<(usize, usize, usize)> {
    let (b, n, d) = x.dims3()?;
    if v.dims() != [b, 1, d] {
        candle_core::bail!("per-item vector {:?} for activations {:?}", v.dims(), x.dims());
    }
    Ok((b, n, d))
}

/// `x·(1 + scale) + shift` for `x` `[B, N, D]` and `shift`, `scale` `[B, 1, D]`.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let fused = [x, shift, scale].iter().all(|t| t.dtype() == DType::F32) && x.rank() == 3 && shift.dims() == scale.dims() && per_item(x.shape(), shift.shape()).is_ok();
    if !fused {
        return x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift);
    }
    x.contiguous()?.apply_op3(&shift.contiguous()?, &scale.contiguous()?, Modulate)
}

struct Modulate;

impl CustomOp3 for Modulate {
    fn name(&self) -> &'static str {
        "reel-modulate"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ss: &CpuStorage, sl: &Layout, cs: &CpuStorage, cl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, shift, scale) = (contiguous_f32(xs, xl, self.name())?, contiguous_f32(ss, sl, self.name())?, contiguous_f32(cs, cl, self.name())?);
        let (_, n, d) = per_item(xl.shape(), sl.shape())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n * d).zip(x.par_chunks(n * d)).enumerate().for_each(|(b, (y, x))| {
            let (sh, sc) = (&shift[b * d..(b + 1) * d], &scale[b * d..(b + 1) * d]);
            for (yr, xr) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                for (((y, &x), &s), &c) in yr.iter_mut().zip(xr).zip(sh).zip(sc) {
                    *y = x * (1.0 + c) + s;
                }
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    /// `dx = g·(1 + scale)`, `dshift_b = Σ_n g`, `dscale_b = Σ_n g·x`.
    fn bwd(&self, x: &Tensor, shift: &Tensor, scale: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, n, d) = per_item(x.shape(), shift.shape())?;
        let (xv, gv, sc) = (f32_vec(x)?, f32_vec(grad)?, f32_vec(scale)?);
        let mut dx = vec![0f32; xv.len()];
        let sums: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(n * d)
            .zip(xv.par_chunks(n * d).zip(gv.par_chunks(n * d)))
            .enumerate()
            .map(|(i, (dx, (x, g)))| {
                let c = &sc[i * d..(i + 1) * d];
                for (dr, gr) in dx.chunks_exact_mut(d).zip(g.chunks_exact(d)) {
                    dr.iter_mut().zip(gr.iter().zip(c)).for_each(|(o, (g, c))| *o = g * (1.0 + c));
                }
                (channel_sums(g, None, d, 1), channel_sums(g, Some(x), d, 1))
            })
            .collect();
        let (dshift, dscale): (Vec<Vec<f32>>, Vec<Vec<f32>>) = sums.into_iter().unzip();
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dshift.concat(), (b, 1, d), dev)?),
            Some(Tensor::from_vec(dscale.concat(), (b, 1, d), dev)?),
        ))
    }
}

// ---------------------------------------------------------------- gated residual

/// `x + y·gate` for `x`, `y` `[B, N, D]` and `gate` `[B, 1, D]`.
pub fn gated_add(x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let fused = [x, y, gate].iter().all(|t| t.dtype() == DType::F32) && x.rank() == 3 && x.dims() == y.dims() && per_item(x.shape(), gate.shape()).is_ok();
    if !fused {
        return x + y.broadcast_mul(gate)?;
    }
    x.contiguous()?.apply_op3(&y.contiguous()?, &gate.contiguous()?, GatedAdd)
}

struct GatedAdd;

impl CustomOp3 for GatedAdd {
    fn name(&self) -> &'static str {
        "reel-gated-add"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ys: &CpuStorage, yl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, y, gate) = (contiguous_f32(xs, xl, self.name())?, contiguous_f32(ys, yl, self.name())?, contiguous_f32(gs, gl, self.name())?);
        let (_, n, d) = per_item(xl.shape(), gl.shape())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n * d).zip(x.par_chunks(n * d).zip(y.par_chunks(n * d))).enumerate().for_each(|(b, (o, (x, y)))| {
            let g = &gate[b * d..(b + 1) * d];
            for ((or, xr), yr) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(y.chunks_exact(d)) {
                for (((o, &x), &y), &g) in or.iter_mut().zip(xr).zip(yr).zip(g) {
                    *o = x + y * g;
                }
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    /// `dx = g`, `dy = g·gate`, `dgate_b = Σ_n g·y`.
    fn bwd(&self, x: &Tensor, y: &Tensor, gate: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, n, d) = per_item(x.shape(), gate.shape())?;
        let (yv, gv, gate_v) = (f32_vec(y)?, f32_vec(grad)?, f32_vec(gate)?);
        let mut dy = vec![0f32; yv.len()];
        let dgate: Vec<Vec<f32>> = dy
            .par_chunks_mut(n * d)
            .zip(yv.par_chunks(n * d).zip(gv.par_chunks(n * d)))
            .enumerate()
            .map(|(i, (dy, (y, g)))| {
                let gt = &gate_v[i * d..(i + 1) * d];
                for (dr, gr) in dy.chunks_exact_mut(d).zip(g.chunks_exact(d)) {
                    dr.iter_mut().zip(gr.iter().zip(gt)).for_each(|(o, (g, t))| *o = g * t);
                }
                channel_sums(g, Some(y), d, 1)
            })
            .collect();
        let dev = x.device();
        Ok((Some(grad.clone()), Some(Tensor::from_vec(dy, y.shape(), dev)?), Some(Tensor::from_vec(dgate.concat(), (b, 1, d), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{assert_same, max_diff, var};
    use candle_core::{Device, Var};

    /// Output and every input gradient of `ours` and `theirs` agree.
    fn same(vars: &[&Var], ours: Tensor, theirs: Tensor) {
        assert_same(vars, &ours, &theirs, (1e-5, 1e-4), "fused op");
    }

    #[test]
    fn the_bias_matches_broadcasting() {
        let (x, b) = (var(&[2, 5, 7]), var(&[7]));
        same(&[&x, &b], add_bias(x.as_tensor(), b.as_tensor()).unwrap(), x.as_tensor().broadcast_add(b.as_tensor()).unwrap());
    }

    #[test]
    fn the_weight_matches_broadcasting() {
        let (x, w) = (var(&[3, 4, 6]), var(&[6]));
        same(&[&x, &w], mul_weight(x.as_tensor(), w.as_tensor()).unwrap(), x.as_tensor().broadcast_mul(w.as_tensor()).unwrap());
    }

    #[test]
    fn the_linear_layer_matches_candles() {
        let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
        let ours = linear(4, 3, vb.clone()).unwrap();
        let theirs = candle_nn::Linear::new(ours.weight().clone(), ours.bias().cloned());
        let x = Tensor::randn(0f32, 1.0, (2, 5, 4), &Device::Cpu).unwrap();
        assert!(max_diff(&ours.forward(&x).unwrap(), &theirs.forward(&x).unwrap()) < 1e-6);
    }

    #[test]
    fn modulation_matches_broadcasting() {
        let (x, shift, scale) = (var(&[3, 6, 5]), var(&[3, 1, 5]), var(&[3, 1, 5]));
        let theirs = x.as_tensor().broadcast_mul(&(scale.as_tensor() + 1.0).unwrap()).unwrap().broadcast_add(shift.as_tensor()).unwrap();
        same(&[&x, &shift, &scale], modulate(x.as_tensor(), shift.as_tensor(), scale.as_tensor()).unwrap(), theirs);
    }

    #[test]
    fn the_gated_residual_matches_broadcasting() {
        let (x, y, gate) = (var(&[2, 4, 6]), var(&[2, 4, 6]), var(&[2, 1, 6]));
        let theirs = (x.as_tensor() + y.as_tensor().broadcast_mul(gate.as_tensor()).unwrap()).unwrap();
        same(&[&x, &y, &gate], gated_add(x.as_tensor(), y.as_tensor(), gate.as_tensor()).unwrap(), theirs);
    }
}
