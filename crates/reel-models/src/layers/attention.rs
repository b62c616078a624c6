//! Scaled dot-product attention on the CPU without materialising large score matrices.
//!
//! Small problems use plain `softmax(q·kᵀ·s + bias)·v`. Larger ones go
//! through a chunked kernel with an online softmax (Milakov & Gimelshein
//! 2018; the recurrence FlashAttention uses): queries in blocks, keys in
//! blocks, a running maximum and sum per query, so memory is bounded by one
//! `q_block × k_block` score tile per (batch, head) whatever the sequence length.

use candle_core::{Result, Tensor, D};

/// Above this many score elements (B·H·Sq·Sk) the chunked kernel is used.
pub const PLAIN_LIMIT: usize = 1 << 24;
/// Query and key block sizes of the chunked kernel.
pub const QUERY_BLOCK: usize = 1024;
pub const KEY_BLOCK: usize = 2048;

/// Attention of `query` `[B, H, Sq, D]` over `key`/`value` `[B, H, Sk, D]`, with an optional
/// additive `bias` broadcastable to `[B, H, Sq, Sk]` (−∞ masks a key).
pub fn attention(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, sq, d) = query.dims4()?;
    let sk = key.dim(2)?;
    if b * h * sq * sk <= PLAIN_LIMIT {
        plain(query, key, value, bias, d)
    } else {
        chunked(query, key, value, bias, d, QUERY_BLOCK, KEY_BLOCK)
    }
}

fn scores(query: &Tensor, key: &Tensor, bias: Option<&Tensor>, d: usize) -> Result<Tensor> {
    let s = (query.matmul(&key.t()?)? * (1.0 / (d as f64).sqrt()))?;
    match bias {
        Some(bias) => s.broadcast_add(bias),
        None => Ok(s),
    }
}

fn plain(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>, d: usize) -> Result<Tensor> {
    let p = candle_nn::ops::softmax_last_dim(&scores(query, key, bias, d)?)?;
    p.matmul(value)
}

/// The bias rows and columns of one tile, where the bias has those dimensions.
fn bias_tile(bias: Option<&Tensor>, q0: usize, ql: usize, k0: usize, kl: usize) -> Result<Option<Tensor>> {
    let Some(bias) = bias else { return Ok(None) };
    let rows = if bias.dim(2)? == 1 { bias.clone() } else { bias.narrow(2, q0, ql)? };
    let tile = if rows.dim(3)? == 1 { rows } else { rows.narrow(3, k0, kl)? };
    Ok(Some(tile))
}

/// The chunked online-softmax kernel (public for tests and benchmarks).
pub fn chunked(query: &Tensor, key: &Tensor, value: &Tensor, bias: Option<&Tensor>, d: usize, q_block: usize, k_block: usize) -> Result<Tensor> {
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
            let s = scores(&q, &k, bias_tile(bias, q0, ql, k0, kl)?.as_ref(), d)?;
            let tile_max = s.max_keepdim(D::Minus1)?;
            running = Some(match running {
                None => {
                    let p = s.broadcast_sub(&tile_max)?.exp()?;
                    (tile_max, p.sum_keepdim(D::Minus1)?, p.matmul(&v)?)
                }
                Some((m, l, acc)) => {
                    let m_new = m.maximum(&tile_max)?;
                    let p = s.broadcast_sub(&m_new)?.exp()?;
                    let correction = (m - &m_new)?.exp()?;
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

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn chunked_equals_plain_with_and_without_bias() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 3, 37, 8), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (2, 3, 53, 8), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (2, 3, 53, 8), &dev)?;
        let want = plain(&q, &k, &v, None, 8)?;
        let got = chunked(&q, &k, &v, None, 8, 10, 7)?;
        assert!(max_diff(&want, &got) < 1e-5);
        // A bias per key (broadcast over queries), masking some keys entirely.
        let mut cols = vec![0f32; 53];
        cols[..5].iter_mut().for_each(|c| *c = f32::NEG_INFINITY);
        cols[40] = 2.0;
        let bias = Tensor::from_vec(cols, (1, 1, 1, 53), &dev)?;
        let want = plain(&q, &k, &v, Some(&bias), 8)?;
        let got = chunked(&q, &k, &v, Some(&bias), 8, 16, 8)?;
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
