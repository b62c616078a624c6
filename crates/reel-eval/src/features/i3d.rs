//! Inflated 3-D Inception (I3D, Carreira & Zisserman 2017), the network behind FVD, run from
//! a user's safetensors file with the parameter names of the widely used PyTorch port
//! (`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`, `logits.conv3d.bias`, …).
//!
//! Every unit is a 3-D convolution with TensorFlow's "SAME" padding, batch norm (eps 0.001,
//! folded into the convolution at load time) and a ReLU; pools pad with zeros first, as that
//! port does. Channel counts are read from the weights, so the standard 400-class network
//! and the narrow random one of the parity fixture load through the same code.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use reel_models::layers::conv::{conv3d, ConvWeight};

/// Batch norm's epsilon in the PyTorch port.
const BN_EPS: f64 = 1e-3;

/// A max pool's (kernel, stride).
type Pool = ([usize; 3], [usize; 3]);

/// The inception blocks in order, with the pool that precedes each one, if any.
const LAYOUT: &[(&str, Option<Pool>)] = &[
    ("Mixed_3b", Some(([1, 3, 3], [1, 2, 2]))),
    ("Mixed_3c", None),
    ("Mixed_4b", Some(([3, 3, 3], [2, 2, 2]))),
    ("Mixed_4c", None),
    ("Mixed_4d", None),
    ("Mixed_4e", None),
    ("Mixed_4f", None),
    ("Mixed_5b", Some(([2, 2, 2], [2, 2, 2]))),
    ("Mixed_5c", None),
];

/// Convolution + folded batch norm (+ ReLU), with "SAME" padding for its stride.
struct Unit {
    weight: ConvWeight,
    kernel: [usize; 3],
    stride: [usize; 3],
    relu: bool,
}

impl Unit {
    fn load(tensors: &HashMap<String, Tensor>, name: &str, stride: [usize; 3]) -> candle_core::Result<Self> {
        let get = |key: &str| tensors.get(&format!("{name}.{key}")).ok_or_else(|| candle_core::Error::Msg(format!("missing tensor '{name}.{key}'")));
        let w = get("conv3d.weight")?.to_dtype(candle_core::DType::F32)?;
        let (out, _, kt, kh, kw) = w.dims5()?;
        let (weight, relu) = if tensors.contains_key(&format!("{name}.bn.weight")) {
            let f32 = |key: &str| get(key).and_then(|t| t.to_dtype(candle_core::DType::F32));
            let scale = (f32("bn.weight")? / (f32("bn.running_var")? + BN_EPS)?.sqrt()?)?;
            let bias = (f32("bn.bias")? - (f32("bn.running_mean")? * &scale)?)?;
            let w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1, 1))?)?;
            (ConvWeight::new(&w, Some(bias))?, true)
        } else {
            let bias = tensors.get(&format!("{name}.conv3d.bias")).map(|b| b.to_dtype(candle_core::DType::F32)).transpose()?;
            (ConvWeight::new(&w, bias)?, false)
        };
        Ok(Self { weight, kernel: [kt, kh, kw], stride, relu })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = same_pad(x, self.kernel, self.stride)?;
        let y = conv3d(&x, &self.weight, self.stride)?;
        if self.relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// TensorFlow's "SAME" padding of `[B, C, T, H, W]` for a kernel and stride (zeros, the extra
/// one at the end), as the PyTorch port computes it.
fn same_pad(x: &Tensor, kernel: [usize; 3], stride: [usize; 3]) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for axis in 0..3 {
        let len = x.dim(axis + 2)?;
        let (k, s) = (kernel[axis], stride[axis]);
        let pad = if len % s == 0 { k.saturating_sub(s) } else { k.saturating_sub(len % s) };
        if pad > 0 {
            x = x.pad_with_zeros(axis + 2, pad / 2, pad - pad / 2)?;
        }
    }
    Ok(x)
}

/// Max pooling with "SAME" zero padding.
fn max_pool(x: &Tensor, kernel: [usize; 3], stride: [usize; 3]) -> candle_core::Result<Tensor> {
    let x = same_pad(x, kernel, stride)?;
    let mut y = x;
    // A box maximum is separable: pool one axis at a time.
    for axis in 0..3 {
        y = pool_axis(&y, axis + 2, kernel[axis], stride[axis], f32::max, f32::NEG_INFINITY)?;
    }
    Ok(y)
}

/// Pools one axis of a contiguous tensor with `op`, valid windows only.
fn pool_axis(x: &Tensor, axis: usize, k: usize, s: usize, op: fn(f32, f32) -> f32, init: f32) -> candle_core::Result<Tensor> {
    if k == 1 && s == 1 {
        return Ok(x.clone());
    }
    let dims = x.dims().to_vec();
    let len = dims[axis];
    if len < k {
        candle_core::bail!("I3D: a pool of {k} does not fit an axis of {len}; the clip is too small for this network");
    }
    let out_len = (len - k) / s + 1;
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let data = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![init; outer * out_len * inner];
    for o in 0..outer {
        for i in 0..out_len {
            let dst = &mut out[(o * out_len + i) * inner..(o * out_len + i + 1) * inner];
            for j in 0..k {
                let src = &data[(o * len + i * s + j) * inner..(o * len + i * s + j + 1) * inner];
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = op(*d, v));
            }
        }
    }
    let mut shape = dims;
    shape[axis] = out_len;
    Tensor::from_vec(out, shape, x.device())
}

struct Inception {
    b0: Unit,
    b1: (Unit, Unit),
    b2: (Unit, Unit),
    b3: Unit,
}

impl Inception {
    fn load(t: &HashMap<String, Tensor>, name: &str) -> candle_core::Result<Self> {
        let unit = |branch: &str| Unit::load(t, &format!("{name}.{branch}"), [1, 1, 1]);
        Ok(Self { b0: unit("b0")?, b1: (unit("b1a")?, unit("b1b")?), b2: (unit("b2a")?, unit("b2b")?), b3: unit("b3b")? })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let b0 = self.b0.forward(x)?;
        let b1 = self.b1.1.forward(&self.b1.0.forward(x)?)?;
        let b2 = self.b2.1.forward(&self.b2.0.forward(x)?)?;
        let b3 = self.b3.forward(&max_pool(x, [3, 3, 3], [1, 1, 1])?)?;
        Tensor::cat(&[b0, b1, b2, b3], 1)
    }
}

/// I3D's two FVD embeddings of a clip.
#[derive(Clone, Debug)]
pub struct I3dOutput {
    /// The class logits averaged over time positions (`[B, classes]`): the original FVD's embedding.
    pub logits: Tensor,
    /// The 1024-channel (in the standard network) average-pooled features before the logits, averaged over time.
    pub pooled: Tensor,
}

/// The I3D network, inference only.
pub struct I3d {
    stem: [Unit; 3],
    blocks: Vec<(Option<Pool>, Inception)>,
    logits: Unit,
}

impl I3d {
    /// Loads from safetensors tensors (names as the PyTorch port writes them; a `module.`
    /// prefix left by `DataParallel` is accepted).
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> candle_core::Result<Self> {
        let tensors: HashMap<String, Tensor> = tensors.into_iter().map(|(k, v)| (k.strip_prefix("module.").map(str::to_string).unwrap_or(k), v)).collect();
        let stem = [
            Unit::load(&tensors, "Conv3d_1a_7x7", [2, 2, 2])?,
            Unit::load(&tensors, "Conv3d_2b_1x1", [1, 1, 1])?,
            Unit::load(&tensors, "Conv3d_2c_3x3", [1, 1, 1])?,
        ];
        let blocks = LAYOUT.iter().map(|&(name, pool)| Ok((pool, Inception::load(&tensors, name)?))).collect::<candle_core::Result<_>>()?;
        let logits = Unit::load(&tensors, "logits", [1, 1, 1])?;
        Ok(Self { stem, blocks, logits })
    }

    /// Loads a safetensors file.
    pub fn load(path: &Path) -> candle_core::Result<Self> {
        Self::from_tensors(candle_core::safetensors::load(path, &Device::Cpu)?)
    }

    /// Whether these tensor names look like the PyTorch port's I3D.
    pub fn recognises(names: &[String]) -> bool {
        names.iter().any(|n| n.trim_start_matches("module.") == "Conv3d_1a_7x7.conv3d.weight")
    }

    /// # Shapes
    /// `[B, 3, T, H, W]` in −1…1 (T ≥ 9 and H, W ≥ 193 for the final 2×7×7 average pool;
    /// FVD uses 16 × 224 × 224) → logits `[B, classes]` and pooled features `[B, channels]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<I3dOutput> {
        let mut x = self.stem[0].forward(x)?;
        x = max_pool(&x, [1, 3, 3], [1, 2, 2])?;
        x = self.stem[1].forward(&x)?;
        x = self.stem[2].forward(&x)?;
        for (pool, block) in &self.blocks {
            if let Some((k, s)) = pool {
                x = max_pool(&x, *k, *s)?;
            }
            x = block.forward(&x)?;
        }
        // AvgPool3d([2, 7, 7], stride 1), valid windows.
        let add = |a: f32, b: f32| a + b;
        let mut pooled = x;
        for (axis, k) in [(2, 2), (3, 7), (4, 7)] {
            pooled = pool_axis(&pooled, axis, k, 1, add, 0.0)?;
        }
        let pooled = (pooled / 98.0)?;
        let logits = self.logits.forward(&pooled)?;
        // Average the remaining time (and any spatial) positions.
        let mean = |t: Tensor| t.flatten_from(2)?.mean(2);
        Ok(I3dOutput { logits: mean(logits)?, pooled: mean(pooled)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_follows_tensorflow() -> candle_core::Result<()> {
        // Length 7, kernel 3, stride 2: 7 % 2 = 1 → pad 3 − 1 = 2 (1 before, 1 after).
        // Length 8, kernel 7, stride 2: pad 7 − 2 = 5 (2 before, 3 after).
        let x = Tensor::zeros((1, 1, 7, 8, 1), candle_core::DType::F32, &Device::Cpu)?;
        let y = same_pad(&x, [3, 7, 1], [2, 2, 1])?;
        assert_eq!(y.dims(), [1, 1, 9, 13, 1]);
        Ok(())
    }

    #[test]
    fn max_pool_takes_the_box_maximum_with_zero_padding() -> candle_core::Result<()> {
        // One axis of [-1, 5, 2, -3]: kernel 3, stride 2, SAME → pad 3 − 2 = 1 (4 % 2 = 0), all of
        // it after: [-1, 5, 2, -3, 0] → windows [-1,5,2], [2,-3,0] → [5, 2].
        let x = Tensor::new(&[-1f32, 5.0, 2.0, -3.0], &Device::Cpu)?.reshape((1, 1, 1, 1, 4))?;
        let y = max_pool(&x, [1, 1, 3], [1, 1, 2])?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5.0, 2.0]);
        // All negative: the zero padding wins at the border, as in the PyTorch port.
        let x = Tensor::new(&[-4f32, -2.0, -3.0], &Device::Cpu)?.reshape((1, 1, 3, 1, 1))?;
        let y = max_pool(&x, [3, 1, 1], [1, 1, 1])?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [0.0, -2.0, 0.0]);
        Ok(())
    }
}
