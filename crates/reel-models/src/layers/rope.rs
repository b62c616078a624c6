//! Wan's 3-D rotary position embedding: the head dimension is split into a
//! time part and two equal space parts (`h = w = 2·⌊d/6⌋`, `t = d − h − w`),
//! each rotated by its own position (RoFormer, Su et al. 2021).
//!
//! Tables are computed in f64 and stored in f32, as diffusers does. Positions
//! are computed, not looked up, so a clip of a long video can start at any
//! `frame_offset` (the long-video issue's clip parallelism).

use candle_core::{Device, Result, Tensor};

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

/// Rotates interleaved pairs of `x` (`[B, heads, tokens, head_dim]`) by the tables.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin)
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
