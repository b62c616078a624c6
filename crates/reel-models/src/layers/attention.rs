//! Scaled dot-product attention on the CPU without materialising large score matrices.
//!
//! Score tiles are kept to about [`TILE_ELEMENTS`] (16 MiB), small enough to be
//! served from reused heap memory and to stay in cache-friendly sizes:
//!
//! - up to [`ROW_KEYS`] keys, queries are processed in blocks whose scores over
//!   all keys fit a tile, with a fused one-pass softmax;
//! - beyond that, keys are processed in blocks too, with an online softmax
//!   (Milakov & Gimelshein 2018; the recurrence FlashAttention uses): a running
//!   maximum and sum per query, so memory is one tile whatever the length.
//!
//! The 1/√d scale is folded into the queries once.

use candle_core::{Result, Tensor, D};

use crate::layers::fast_math::{exp, softmax_last_dim};

/// Score elements per tile (B·H·rows·keys).
pub const TILE_ELEMENTS: usize = 4 << 20;
/// Most keys handled as whole rows; longer key sequences use the online softmax.
pub const ROW_KEYS: usize = 8192;
/// Key block of the online softmax.
pub const KEY_BLOCK: usize = 4096;

/// Attention of `query` `[B, H, Sq, D]` over `key`/`value` `[B, H, Sk, D]`, with an optional
/// additive `bias` broadcastable to `[B, H, Sq, Sk]` (−∞ masks a key).
pub fn attention(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, _, d) = query.dims4()?;
    let sk = key.dim(2)?;
    let query = (query * (1.0 / (d as f64).sqrt()))?;
    if sk <= ROW_KEYS {
        let rows = (TILE_ELEMENTS / (b * h * sk).max(1)).max(1);
        row_blocks(&query, key, value, bias, rows)
    } else {
        let rows = (TILE_ELEMENTS / (b * h * KEY_BLOCK)).max(1);
        online(&query, key, value, bias, rows, KEY_BLOCK)
    }
}

/// Scores of pre-scaled queries, plus the bias tile.
fn scores(query: &Tensor, key: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let s = query.matmul(&key.t()?)?;
    match bias {
        Some(bias) => s.broadcast_add(bias),
        None => Ok(s),
    }
}

/// The bias rows and columns of one tile, where the bias has those dimensions.
fn bias_tile(bias: Option<&Tensor>, q0: usize, ql: usize, k0: usize, kl: usize) -> Result<Option<Tensor>> {
    let Some(bias) = bias else { return Ok(None) };
    let rows = if bias.dim(2)? == 1 { bias.clone() } else { bias.narrow(2, q0, ql)? };
    let tile = if rows.dim(3)? == 1 { rows } else { rows.narrow(3, k0, kl)? };
    Ok(Some(tile))
}

/// Whole-row softmax over all keys, `rows` queries at a time.
fn row_blocks(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>, rows: usize) -> Result<Tensor> {
    let (sq, sk) = (query.dim(2)?, key.dim(2)?);
    if rows >= sq {
        return softmax_last_dim(&scores(query, key, bias)?)?.matmul(value);
    }
    let mut outputs = Vec::with_capacity(sq.div_ceil(rows));
    for q0 in (0..sq).step_by(rows) {
        let ql = rows.min(sq - q0);
        let q = query.narrow(2, q0, ql)?;
        let p = softmax_last_dim(&scores(&q, key, bias_tile(bias, q0, ql, 0, sk)?.as_ref())?)?;
        outputs.push(p.matmul(value)?);
    }
    Tensor::cat(&outputs, 2)
}

/// The online-softmax kernel over key blocks; `query` pre-scaled.
fn online(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>, q_block: usize, k_block: usize) -> Result<Tensor> {
    let sq = query.dim(2)?;
    let sk = key.dim(2)?;
    let mut outputs = Vec::with_capacity(sq.div_ceil(q_block));
    for q0 in (0..sq).step_by(q_block) {
        let ql = q_block.min(sq - q0);
        let q = query.narrow(2, q0, ql)?.contiguous()?;
        let mut running: Option<(Tensor, Tensor, Tensor)> = None; // (max, sum, accumulator)
        for k0 in (0..sk).step_by(k_block) {
            let kl = k_block.min(sk - k0);
            let k = key.narrow(2, k0, kl)?.contiguous()?;
            let v = value.narrow(2, k0, kl)?.contiguous()?;
            let s = scores(&q, &k, bias_tile(bias, q0, ql, k0, kl)?.as_ref())?;
            let tile_max = s.max_keepdim(D::Minus1)?;
            running = Some(match running {
                None => {
                    let p = exp(&s.broadcast_sub(&tile_max)?)?;
                    (tile_max, p.sum_keepdim(D::Minus1)?, p.matmul(&v)?)
                }
                Some((m, l, acc)) => {
                    let m_new = m.maximum(&tile_max)?;
                    let p = exp(&s.broadcast_sub(&m_new)?)?;
                    let correction = exp(&(m - &m_new)?)?;
                    let l = (l.mul(&correction)? + p.sum_keepdim(D::Minus1)?)?;
                    let acc = (acc.broadcast_mul(&correction)? + p.matmul(&v)?)?;
                    (m_new, l, acc)
                }
            });
        }
        let (_, l, acc) = running.expect("at least one key");
        outputs.push(acc.broadcast_div(&l)?);
    }
    Tensor::cat(&outputs, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The textbook formula, as the reference.
    fn plain(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let d = q.dim(3)? as f64;
        let s = (q.matmul(&k.t()?)? / d.sqrt())?;
        let s = match bias {
            Some(b) => s.broadcast_add(b)?,
            None => s,
        };
        candle_nn::ops::softmax_last_dim(&s)?.matmul(v)
    }

    use crate::layers::testing::max_diff;

    #[test]
    fn blocked_kernels_equal_the_plain_formula_with_and_without_bias() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 3, 37, 8), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, 3, 53, 8), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 3, 53, 8), &dev)?;
        let scaled = (&q * (1.0 / 8f64.sqrt()))?;
        let want = plain(&q, &k, &v, None)?;
        let got = online(&scaled, &k, &v, None, 10, 7)?;
        assert!(max_diff(&want, &got) < 1e-5);
        let got = row_blocks(&scaled, &k, &v, None, 6)?;
        assert!(max_diff(&want, &got) < 1e-5);
        // A bias per key (broadcast over queries), masking some keys entirely.
        let mut cols = vec![0f32; 53];
        cols[..5].iter_mut().for_each(|c| *c = f32::NEG_INFINITY);
        cols[40] = 2.0;
        let bias = Tensor::from_vec(cols, (1, 1, 1, 53), &dev)?;
        let want = plain(&q, &k, &v, Some(&bias))?;
        let got = online(&scaled, &k, &v, Some(&bias), 16, 8)?;
        assert!(max_diff(&want, &got) < 1e-5);
        let got = row_blocks(&scaled, &k, &v, Some(&bias), 5)?;
        assert!(max_diff(&want, &got) < 1e-5);
        Ok(())
    }

    #[test]
    fn masked_keys_do_not_count() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 2, 4, 8), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, 2, 6, 8), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, 2, 6, 8), &dev)?;
        let mut cols = vec![0f32; 6];
        cols[4] = f32::NEG_INFINITY;
        cols[5] = f32::NEG_INFINITY;
        let bias = Tensor::from_vec(cols, (1, 1, 1, 6), &dev)?;
        let masked = attention(&q, &k, &v, Some(&bias))?;
        let only_first = attention(&q, &k.narrow(2, 0, 4)?, &v.narrow(2, 0, 4)?, None)?;
        assert!(max_diff(&masked, &only_first) < 1e-6);
        let _ = DType::F32;
        Ok(())
    }
}
