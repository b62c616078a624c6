//! Per-channel operations, fused into one pass each with a hand-written backward pass: a
//! vector added to or multiplied into a tensor along one axis (a convolution's or a linear
//! layer's bias, a norm's learned scale), and the VAE's channel RMS norm.
//!
//! Written as candle ops, their backward passes reduce over strided dimensions (every axis
//! but the channel's for a bias or a scale, the channel axis for the norm), which candle does
//! element by element through index arithmetic: in a VAE training step those reductions were
//! an eighth of the time (measured with `perf` on shapes-v1's VAE run), in a transformer step
//! as much again. Here each is a loop over contiguous runs.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::layers::fast_math::{contiguous_f32, f32_vec};

/// `(batch, channels, positions per channel)` of a channels-first shape.
fn planes(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("channel op: needs [B, C, …], got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// Elements per parallel work item.
const PAR_ELEMENTS: usize = 1 << 14;

/// Σ `a·b` (or Σ `a`) into one sum per channel, for data laid out as repeated periods of `d`
/// channels × `inner` contiguous values.
pub(crate) fn channel_sums(a: &[f32], b: Option<&[f32]>, d: usize, inner: usize) -> Vec<f32> {
    let mut acc = vec![0f32; d];
    let period = d * inner;
    for (i, pa) in a.chunks_exact(period).enumerate() {
        let pb = b.map(|b| &b[i * period..(i + 1) * period]);
        if inner == 1 {
            match pb {
                Some(pb) => acc.iter_mut().zip(pa.iter().zip(pb)).for_each(|(s, (x, y))| *s += x * y),
                None => acc.iter_mut().zip(pa).for_each(|(s, x)| *s += x),
            }
        } else {
            for (j, run) in pa.chunks_exact(inner).enumerate() {
                acc[j] += match pb {
                    Some(pb) => run.iter().zip(&pb[j * inner..(j + 1) * inner]).map(|(x, y)| x * y).sum::<f32>(),
                    None => run.iter().sum::<f32>(),
                };
            }
        }
    }
    acc
}

/// `f(x, v_c)` over one period: `v.len()` channels × `inner` contiguous values (generic, so
/// `f` inlines and the runs vectorise).
fn combine_runs(period: &mut [f32], v: &[f32], inner: usize, f: impl Fn(&mut f32, f32)) {
    if inner == 1 {
        period.iter_mut().zip(v).for_each(|(x, &c)| f(x, c));
    } else {
        for (run, &c) in period.chunks_exact_mut(inner).zip(v) {
            run.iter_mut().for_each(|x| f(x, c));
        }
    }
}

/// How a per-channel vector combines with the tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Combine {
    Add,
    Mul,
}

/// `x ∘ v` along `axis` (`∘` = + or ·): `v[c]` meets every element whose index on `axis` is `c`.
struct AlongAxis {
    combine: Combine,
    axis: usize,
}

impl AlongAxis {
    /// `(channels, inner)`: the axis' length and the number of contiguous values per channel.
    fn layout(&self, shape: &Shape) -> Result<(usize, usize)> {
        let dims = shape.dims();
        match dims.get(self.axis) {
            Some(&d) if d > 0 => Ok((d, dims[self.axis + 1..].iter().product())),
            _ => candle_core::bail!("per-channel op: axis {} of {dims:?}", self.axis),
        }
    }

    fn apply(&self, x: &Tensor, v: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op2(&v.flatten_all()?.contiguous()?, Self { ..*self })
    }
}

impl CustomOp2 for AlongAxis {
    fn name(&self) -> &'static str {
        match self.combine {
            Combine::Add => "reel-add-along-axis",
            Combine::Mul => "reel-mul-along-axis",
        }
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, vs: &CpuStorage, vl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, self.name())?;
        let v = contiguous_f32(vs, vl, self.name())?;
        let (d, inner) = self.layout(xl.shape())?;
        if v.len() != d {
            candle_core::bail!("{}: {} values for {d} channels", self.name(), v.len());
        }
        let period = d * inner;
        let mut out = x.to_vec();
        if period > 0 {
            out.par_chunks_mut(period * PAR_ELEMENTS.div_ceil(period)).for_each(|task| {
                for p in task.chunks_exact_mut(period) {
                    match self.combine {
                        Combine::Add => combine_runs(p, v, inner, |x, c| *x += c),
                        Combine::Mul => combine_runs(p, v, inner, |x, c| *x *= c),
                    }
                }
            });
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    /// Add: `dx = g`, `dv_c = Σ g`. Mul: `dx = g·v`, `dv_c = Σ g·x`.
    fn bwd(&self, x: &Tensor, v: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (d, inner) = self.layout(x.shape())?;
        let g = f32_vec(grad)?;
        let xv = if self.combine == Combine::Mul { Some(f32_vec(x)?) } else { None };
        let period = (d * inner).max(1);
        let task = period * PAR_ELEMENTS.div_ceil(period);
        let partial: Vec<Vec<f32>> = g.par_chunks(task).enumerate().map(|(i, gt)| channel_sums(gt, xv.as_ref().map(|x| &x[i * task..i * task + gt.len()]), d, inner)).collect();
        let mut dv = vec![0f32; d];
        for p in partial {
            dv.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        let dx = match self.combine {
            Combine::Add => grad.clone(),
            Combine::Mul => self.apply(&grad.detach(), &v.detach())?,
        };
        Ok((Some(dx), Some(Tensor::from_vec(dv, v.shape(), v.device())?)))
    }
}

/// `x + v_c` along `axis` (f32; other dtypes through candle's broadcasting).
pub fn add_along(x: &Tensor, v: &Tensor, axis: usize) -> Result<Tensor> {
    if x.dtype() != DType::F32 || v.dtype() != DType::F32 {
        return x.broadcast_add(&broadcastable(v, x.rank(), axis)?);
    }
    AlongAxis { combine: Combine::Add, axis }.apply(x, v)
}

/// `x · v_c` along `axis` (f32; other dtypes through candle's broadcasting).
pub fn mul_along(x: &Tensor, v: &Tensor, axis: usize) -> Result<Tensor> {
    if x.dtype() != DType::F32 || v.dtype() != DType::F32 {
        return x.broadcast_mul(&broadcastable(v, x.rank(), axis)?);
    }
    AlongAxis { combine: Combine::Mul, axis }.apply(x, v)
}

/// `v` shaped `[1, …, C, …, 1]` to broadcast along `axis` of a rank-`rank` tensor.
fn broadcastable(v: &Tensor, rank: usize, axis: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[axis] = v.elem_count();
    v.reshape(shape)
}

/// `x + bias_c` over the channel axis of `[B, C, …]` (a convolution's bias).
pub fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    add_along(x, bias, 1)
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
        let xv = f32_vec(x)?;
        let gv = f32_vec(grad)?;
        let gamma_v = f32_vec(gamma)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{assert_same, var};
    use candle_core::{Device, Var};

    /// The same norm from candle's own ops (the formula the fused op replaces).
    fn composite(x: &Tensor, gamma: &Tensor, scale: f64) -> Result<Tensor> {
        let norm = (x.sqr()?.sum_keepdim(1)? + 1e-24)?.sqrt()?;
        let mut shape = vec![1; x.rank()];
        shape[1] = gamma.dim(0)?;
        x.broadcast_div(&norm)?.broadcast_mul(&(gamma.reshape(shape)? * scale)?)
    }

    #[test]
    fn the_fused_norm_matches_candles_ops_and_their_gradients() -> Result<()> {
        for dims in [vec![2, 5, 3, 4, 6], vec![3, 4, 7, 7]] {
            let x = var(&dims);
            let gamma = Var::from_tensor(&Tensor::randn(1f32, 0.5, dims[1], &Device::Cpu)?)?;
            let ours = channel_rms_norm(x.as_tensor(), gamma.as_tensor(), 2.0)?;
            let theirs = composite(x.as_tensor(), gamma.as_tensor(), 2.0)?;
            assert_same(&[&x, &gamma], &ours, &theirs, (1e-5, 1e-4), &format!("{dims:?}"));
        }
        Ok(())
    }

    #[test]
    fn a_zero_pixel_stays_finite() -> Result<()> {
        let x = Var::from_tensor(&Tensor::zeros((1, 3, 2), DType::F32, &Device::Cpu)?)?;
        let gamma = Tensor::ones(3, DType::F32, &Device::Cpu)?;
        let y = channel_rms_norm(x.as_tensor(), &gamma, 1.0)?;
        let g = y.sum_all()?.backward()?;
        let all: Vec<f32> = g.get(&x).unwrap().flatten_all()?.to_vec1()?;
        assert!(y.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| *v == 0.0));
        assert!(all.iter().all(|v| v.is_finite()));
        Ok(())
    }

    #[test]
    fn the_channel_bias_and_its_gradient() -> Result<()> {
        let (x, bias) = (var(&[2, 3, 4, 5]), Var::from_tensor(&Tensor::new(&[1f32, -2.0, 0.5], &Device::Cpu)?)?);
        let ours = add_channel_bias(x.as_tensor(), bias.as_tensor())?;
        let theirs = x.as_tensor().broadcast_add(&bias.as_tensor().reshape((1, 3, 1, 1))?)?;
        assert_same(&[&x, &bias], &ours, &theirs, (1e-6, 1e-4), "channel bias");
        Ok(())
    }

    #[test]
    fn per_axis_ops_match_broadcasting_on_every_axis_and_across_work_items() -> Result<()> {
        // Small and large (several parallel work items, whose partial sums are added), the
        // axis first, in the middle and last (runs of one value).
        for (dims, axis) in [(vec![2, 3, 4, 5], 1), (vec![3, 5, 4000], 1), (vec![6, 2, 3], 0), (vec![5000, 7], 1), (vec![4, 3, 5], 2)] {
            let (x, v) = (var(&dims), var(&[dims[axis]]));
            let along = broadcastable(v.as_tensor(), dims.len(), axis)?;
            let what = format!("{dims:?} axis {axis}");
            // Gradients sum up to 20 000 values: f32 rounding differs with the order.
            assert_same(&[&x, &v], &add_along(x.as_tensor(), v.as_tensor(), axis)?, &x.as_tensor().broadcast_add(&along)?, (1e-5, 2e-3), &what);
            assert_same(&[&x, &v], &mul_along(x.as_tensor(), v.as_tensor(), axis)?, &x.as_tensor().broadcast_mul(&along)?, (1e-5, 2e-3), &what);
        }
        Ok(())
    }
}
