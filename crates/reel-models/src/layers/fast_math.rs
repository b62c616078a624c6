//! Vectorisable `exp` and a fused softmax for the CPU.
//!
//! candle's CPU `exp` and softmax call libm's scalar `expf` per element; in
//! attention over thousands of tokens that is a large share of the time
//! (PyTorch's CPU flash attention uses a vectorised exp). [`exp_f32`] is
//! branch-free arithmetic that LLVM vectorises: range reduction
//! `x = n·ln2 + r` (Cody–Waite, two-part ln2), a degree-6 polynomial for `eʳ`,
//! and `2ⁿ` assembled from exponent bits. Maximum relative error ≈ 2e-7
//! (tested against `f32::exp` over the whole useful range).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// Elements per parallel work item.
const PAR_CHUNK: usize = 1 << 14;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_145_75;
const ROUNDER: f32 = 12_582_912.0;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `eˣ` for f32, vectorisable; inputs below −87.3 give 0, above 88.7 give +∞.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.336_54, 88.722_84);
    // Round to nearest (ties to even) by adding and removing 1.5·2²³: branch-free and
    // vectorisable, where `round_ties_even` is a libm call on baseline x86-64.
    let n = (x * LOG2E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor/minimax-quality polynomial for e^r on [−ln2/2, ln2/2].
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    let y = p * scale;
    if x <= -87.336_54 {
        0.0
    } else {
        y
    }
}

/// `f` applied to every element, in parallel chunks (generic, so `f` inlines and vectorises).
fn par_map(src: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(PAR_CHUNK).zip(src.par_chunks(PAR_CHUNK)).for_each(|(dst, src)| {
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = f(v));
    });
    out
}

/// The f32 data of a custom op's input (which must be contiguous), for Reel's CPU kernels.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: f32 only") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: needs a contiguous tensor"),
    }
}

/// A tensor's values as a contiguous f32 vector (for Reel's kernels' backward passes).
pub(crate) fn f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

struct Exp;

impl CustomOp1 for Exp {
    fn name(&self) -> &'static str {
        "reel-exp"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(par_map(contiguous_f32(storage, layout, "exp")?, exp_f32)), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.mul(res)?))
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "reel-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "softmax")?;
        let dim = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; src.len()];
        out.par_chunks_exact_mut(dim).zip(src.par_chunks_exact(dim)).for_each(|(dst, row)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                // Every key masked: torch gives NaN here; keep a defined 0.
                return;
            }
            let mut sum = 0f32;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = exp_f32(v - max);
                sum += *d;
            }
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|d| *d *= inv);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some(res.mul(&grad_res.broadcast_sub(&dot)?)?))
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// GELU with the tanh approximation, `tanh` written through [`exp_f32`]:
/// `tanh(u) = 1 − 2 / (e²ᵘ + 1)`.
#[inline(always)]
pub fn gelu_tanh_f32(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
    let t = 1.0 - 2.0 / (exp_f32(2.0 * u) + 1.0);
    0.5 * x * (1.0 + t)
}

/// The derivative of [`gelu_tanh_f32`].
#[inline(always)]
fn gelu_tanh_grad_f32(x: f32) -> f32 {
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * (x + GELU_C * x2 * x);
    let t = 1.0 - 2.0 / (exp_f32(2.0 * u) + 1.0);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x2);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
}

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "reel-gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(par_map(contiguous_f32(storage, layout, "gelu")?, gelu_tanh_f32)), layout.shape().clone()))
    }

    /// `½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3c·x²)`, `t = tanh(√(2/π)(x + c·x³))`, in one pass.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (x, g) = (f32_vec(arg)?, f32_vec(grad_res)?);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(PAR_CHUNK).zip(x.par_chunks(PAR_CHUNK).zip(g.par_chunks(PAR_CHUNK))).for_each(|(o, (x, g))| {
            o.iter_mut().zip(x.iter().zip(g)).for_each(|(o, (&x, &g))| *o = g * gelu_tanh_grad_f32(x));
        });
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}

/// GELU (tanh approximation) elementwise: f32 on the CPU through [`gelu_tanh_f32`], else candle's.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(GeluTanh)
    } else {
        x.gelu()
    }
}

/// `eˣ` elementwise (f32 on the CPU through [`exp_f32`]; other cases through candle).
pub fn exp(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(Exp)
    } else {
        x.exp()
    }
}

/// Softmax over the last dimension (fused, f32 on the CPU; other cases through candle).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn exp_is_accurate_over_the_useful_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "max relative error {worst:e}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(100.0).is_infinite());
    }

    #[test]
    fn gelu_matches_candle_and_has_its_gradient() -> Result<()> {
        let d = Device::Cpu;
        let x = Var::new(&[-6f32, -2.5, -0.3, 0.0, 0.7, 3.0, 9.0], &d)?;
        let ours = gelu_tanh(x.as_tensor())?;
        let theirs = x.as_tensor().gelu()?;
        assert!((&ours - &theirs)?.abs()?.max(0)?.to_scalar::<f32>()? < 1e-6);
        let g_ours = ours.sum_all()?.backward()?;
        let g_ref = theirs.sum_all()?.backward()?;
        let gd = (g_ours.get(&x).unwrap() - g_ref.get(&x).unwrap())?.abs()?.max(0)?.to_scalar::<f32>()?;
        assert!(gd < 1e-5, "{gd}");
        Ok(())
    }

    #[test]
    fn softmax_matches_candle_and_has_its_gradient() -> Result<()> {
        let d = Device::Cpu;
        let x = Var::new(&[[1f32, 2.0, 3.0, -1.0], [0.5, 0.5, f32::NEG_INFINITY, 10.0]], &d)?;
        let ours = softmax_last_dim(x.as_tensor())?;
        let theirs = candle_nn::ops::softmax_last_dim(x.as_tensor())?;
        let diff = (&ours - &theirs)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        // d/dx of Σ w·softmax(x) against candle's autograd of the reference formula.
        let w = Tensor::new(&[[0.3f32, -1.0, 2.0, 0.5], [1.0, 0.0, 0.0, -2.0]], &d)?;
        let g_ours = (&ours * &w)?.sum_all()?.backward()?;
        let reference = {
            let m = x.as_tensor().max_keepdim(1)?;
            let e = x.as_tensor().broadcast_sub(&m)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(1)?)?
        };
        let g_ref = (&reference * &w)?.sum_all()?.backward()?;
        let (a, b) = (g_ours.get(&x).unwrap(), g_ref.get(&x).unwrap());
        let gd = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(gd < 1e-5, "{gd}");
        Ok(())
    }
}
