//! Wan's 3-D rotary position embedding: the head dimension is split into a
//! time part and two equal space parts (`h = w = 2·⌊d/6⌋`, `t = d − h − w`),
//! each rotated by its own position (RoFormer, Su et al. 2021).
//!
//! Tables are computed in f64 and stored in f32, as diffusers does. Positions
//! are computed, not looked up, so a clip of a long video can start at any
//! `frame_offset` (the long-video issue's clip parallelism).

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::layers::fast_math::contiguous_f32;

const THETA: f64 = 10000.0;

/// The split of a head dimension into (time, height, width) rotary parts.
pub fn split_head_dim(head_dim: usize) -> (usize, usize, usize) {
    let hw = 2 * (head_dim / 6);
    (head_dim - 2 * hw, hw, hw)
}

fn inverse_frequencies(dim: usize) -> Vec<f64> {
    (0..dim / 2).map(|k| 1.0 / THETA.powf((2 * k) as f64 / dim as f64)).collect()
}

/// Where the tokens of a latent grid sit: `frames × height × width` patches,
/// the first frame at `frame_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridPositions {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub frame_offset: usize,
}

/// `(cos, sin)`, each `[frames·height·width, head_dim / 2]`, tokens in (frame, row, column) order.
pub fn wan_rope_tables(head_dim: usize, grid: GridPositions, device: &Device) -> Result<(Tensor, Tensor)> {
    let (t_dim, h_dim, w_dim) = split_head_dim(head_dim);
    let (ft, fh, fw) = (inverse_frequencies(t_dim), inverse_frequencies(h_dim), inverse_frequencies(w_dim));
    let tokens = grid.frames * grid.height * grid.width;
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(tokens * half);
    let mut sin = Vec::with_capacity(tokens * half);
    for f in 0..grid.frames {
        for h in 0..grid.height {
            for w in 0..grid.width {
                let parts = [(f + grid.frame_offset, &ft), (h, &fh), (w, &fw)];
                for (position, freqs) in parts {
                    for &freq in freqs.iter() {
                        let angle = position as f64 * freq;
                        cos.push(angle.cos() as f32);
                        sin.push(angle.sin() as f32);
                    }
                }
            }
        }
    }
    Ok((Tensor::from_vec(cos, (tokens, half), device)?, Tensor::from_vec(sin, (tokens, half), device)?))
}

/// Interleaved-pair rotation (candle's `rope_i` has no backward pass, so models using it
/// could not be trained). The gradient of a rotation is the inverse rotation.
struct RotateInterleaved;

impl CustomOp3 for RotateInterleaved {
    fn name(&self) -> &'static str {
        "reel-rope-interleaved"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, cs: &CpuStorage, cl: &Layout, ss: &CpuStorage, sl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, cos, sin) = (contiguous_f32(xs, xl, "rope")?, contiguous_f32(cs, cl, "rope")?, contiguous_f32(ss, sl, "rope")?);
        let dims = xl.shape().dims();
        let (t, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_exact_mut(t * d).zip(x.par_chunks_exact(t * d)).for_each(|(dst, src)| {
            for tok in 0..t {
                for i in 0..d / 2 {
                    let (c, s) = (cos[tok * d / 2 + i], sin[tok * d / 2 + i]);
                    let (x0, x1) = (src[tok * d + 2 * i], src[tok * d + 2 * i + 1]);
                    dst[tok * d + 2 * i] = x0 * c - x1 * s;
                    dst[tok * d + 2 * i + 1] = x0 * s + x1 * c;
                }
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, cos: &Tensor, sin: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = grad.contiguous()?.apply_op3(cos, &sin.neg()?, RotateInterleaved)?;
        Ok((Some(back), None, None))
    }
}

/// Rotates interleaved pairs of `x` (`[B, heads, tokens, head_dim]`) by the `[tokens, head_dim/2]` tables.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_, _, t, d) = x.dims4()?;
    if cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
        candle_core::bail!("rope tables: expected [{t}, {}], got {:?} and {:?}", d / 2, cos.dims(), sin.dims());
    }
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, RotateInterleaved)
    } else {
        candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_wan() {
        assert_eq!(split_head_dim(128), (44, 42, 42));
        assert_eq!(split_head_dim(12), (4, 4, 4));
    }

    #[test]
    fn rotation_matches_candle_and_its_gradient_is_the_inverse_rotation() -> Result<()> {
        let d = Device::Cpu;
        let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 12), &d)?)?;
        let (cos, sin) = wan_rope_tables(12, GridPositions { frames: 1, height: 2, width: 3, frame_offset: 4 }, &d)?;
        let ours = apply_rope(x.as_tensor(), &cos, &sin)?;
        let theirs = candle_nn::rotary_emb::rope_i_slow(x.as_tensor(), &cos, &sin)?;
        let diff = (&ours - &theirs)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        let probe = Tensor::randn(0f32, 1.0, (2, 3, 6, 12), &d)?;
        let g1 = (&ours * &probe)?.sum_all()?.backward()?;
        let g2 = (&theirs * &probe)?.sum_all()?.backward()?;
        let gd = (g1.get(&x).unwrap() - g2.get(&x).unwrap())?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(gd < 1e-5, "{gd}");
        Ok(())
    }

    #[test]
    fn an_offset_grid_is_a_slice_of_the_full_grid() -> Result<()> {
        let dev = Device::Cpu;
        let full = GridPositions { frames: 5, height: 2, width: 3, frame_offset: 0 };
        let part = GridPositions { frames: 2, height: 2, width: 3, frame_offset: 3 };
        let (cf, _) = wan_rope_tables(12, full, &dev)?;
        let (cp, _) = wan_rope_tables(12, part, &dev)?;
        let expected = cf.narrow(0, 3 * 6, 2 * 6)?;
        assert_eq!(cp.to_vec2::<f32>()?, expected.to_vec2::<f32>()?);
        Ok(())
    }
}
