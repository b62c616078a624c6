//! The T5 and umT5 encoders (Raffel et al. 2020; Chung et al. 2023, "UniMax"),
//! as transformers' `T5EncoderModel` / `UMT5EncoderModel` compute them. Wan2.1
//! conditions on umT5-XXL.
//!
//! T5 computes its relative-position bias in the first layer and shares it;
//! umT5 gives every layer its own. Attention is not scaled by 1/√d (T5's
//! initialisation absorbs it). Norms are RMS norms without a bias.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{embedding, linear_no_bias, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// Config keys as in transformers' `T5Config` / `UMT5Config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    /// `relu`, `gated-gelu` (GELU with tanh, T5 v1.1 / umT5) or `gated-<act>`.
    pub feed_forward_proj: String,
    /// `t5` or `umt5`.
    pub model_type: String,
}

impl Default for T5Config {
    fn default() -> Self {
        Self {
            vocab_size: 32128,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            num_layers: 6,
            num_heads: 8,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "relu".into(),
            model_type: "t5".into(),
        }
    }
}

impl T5Config {
    /// umT5-XXL's encoder, as Wan2.1 uses it.
    pub fn umt5_xxl() -> Self {
        Self {
            vocab_size: 256384,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            feed_forward_proj: "gated-gelu".into(),
            model_type: "umt5".into(),
            ..Self::default()
        }
    }

    fn per_layer_bias(&self) -> bool {
        self.model_type == "umt5"
    }

    fn activation(&self) -> std::result::Result<(bool, Activation), String> {
        let (gated, act) = match self.feed_forward_proj.strip_prefix("gated-") {
            Some(a) => (true, a),
            None => (false, self.feed_forward_proj.as_str()),
        };
        let act = match act {
            "relu" => Activation::Relu,
            // transformers maps gated-gelu to "gelu_new" (the tanh approximation).
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(format!("feed_forward_proj activation '{other}' is not supported (relu, gelu)")),
        };
        Ok((gated, act))
    }
}

#[derive(Clone, Copy, Debug)]
enum Activation {
    Relu,
    GeluTanh,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Relu => x.relu(),
            Self::GeluTanh => crate::layers::fast_math::gelu_tanh(x),
        }
    }
}

/// RMS norm without mean subtraction or bias, in f32 (T5's `T5LayerNorm`).
#[derive(Clone, Debug)]
struct T5LayerNorm {
    weight: Tensor,
    eps: f64,
}

impl T5LayerNorm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?, eps })
    }
}

impl Module for T5LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::layers::norm::rms_norm(x, &self.weight, self.eps)
    }
}

/// Bucket of a relative position (bidirectional), computed as transformers does (f32, truncation).
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = (num_buckets / 2) as i64;
    let mut bucket = if relative > 0 { half } else { 0 };
    let n = relative.abs();
    let max_exact = half / 2;
    if n < max_exact {
        bucket += n;
    } else {
        let ratio = (n as f32 / max_exact as f32).ln() / ((max_distance as f64 / max_exact as f64).ln() as f32);
        let large = max_exact + (ratio * (half - max_exact) as f32) as i64;
        bucket += large.min(half - 1);
    }
    bucket as usize
}

#[derive(Clone, Debug)]
struct T5Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    relative_attention_bias: Option<Embedding>,
    heads: usize,
    d_kv: usize,
    buckets: usize,
    max_distance: usize,
}

impl T5Attention {
    fn new(cfg: &T5Config, has_bias: bool, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        let relative_attention_bias = if has_bias {
            Some(embedding(cfg.relative_attention_num_buckets, cfg.num_heads, vb.pp("relative_attention_bias"))?)
        } else {
            None
        };
        Ok(Self {
            q: linear_no_bias(cfg.d_model, inner, vb.pp("q"))?,
            k: linear_no_bias(cfg.d_model, inner, vb.pp("k"))?,
            v: linear_no_bias(cfg.d_model, inner, vb.pp("v"))?,
            o: linear_no_bias(inner, cfg.d_model, vb.pp("o"))?,
            relative_attention_bias,
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
            buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        })
    }

    /// `[1, heads, L, L]` position bias.
    fn position_bias(&self, len: usize, device: &Device) -> Result<Option<Tensor>> {
        let Some(table) = &self.relative_attention_bias else { return Ok(None) };
        let ids: Vec<u32> = (0..len)
            .flat_map(|q| (0..len).map(move |k| (k as i64 - q as i64, q)))
            .map(|(rel, _)| relative_position_bucket(rel, self.buckets, self.max_distance) as u32)
            .collect();
        let ids = Tensor::from_vec(ids, (len, len), device)?;
        Ok(Some(table.forward(&ids)?.permute((2, 0, 1))?.unsqueeze(0)?))
    }

    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        x.reshape((b, l, self.heads, self.d_kv))?.transpose(1, 2)?.contiguous()
    }

    /// `bias`: position bias plus the padding mask, `[B or 1, heads, L, L]`.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let (q, k, v) = (self.split(&self.q.forward(x)?)?, self.split(&self.k.forward(x)?)?, self.split(&self.v.forward(x)?)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let out = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
        self.o.forward(&out.transpose(1, 2)?.reshape((b, l, self.heads * self.d_kv))?)
    }
}

#[derive(Clone, Debug)]
struct T5FeedForward {
    wi: Linear,
    wi_gate: Option<Linear>,
    wo: Linear,
    act: Activation,
}

impl T5FeedForward {
    fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let (gated, act) = cfg.activation().map_err(candle_core::Error::msg)?;
        let vb = vb.pp("DenseReluDense");
        let (wi, wi_gate) = if gated {
            (linear_no_bias(cfg.d_model, cfg.d_ff, vb.pp("wi_0"))?, Some(linear_no_bias(cfg.d_model, cfg.d_ff, vb.pp("wi_1"))?))
        } else {
            (linear_no_bias(cfg.d_model, cfg.d_ff, vb.pp("wi"))?, None)
        };
        Ok(Self { wi, wi_gate, wo: linear_no_bias(cfg.d_ff, cfg.d_model, vb.pp("wo"))?, act })
    }
}

impl Module for T5FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.act.apply(&self.wi.forward(x)?)?;
        let h = match &self.wi_gate {
            Some(gate) => (h * gate.forward(x)?)?,
            None => h,
        };
        self.wo.forward(&h)
    }
}

#[derive(Clone, Debug)]
struct T5Block {
    attention: T5Attention,
    attention_norm: T5LayerNorm,
    ff: T5FeedForward,
    ff_norm: T5LayerNorm,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct T5Encoder {
    config: T5Config,
    embed: Embedding,
    blocks: Vec<T5Block>,
    final_norm: T5LayerNorm,
}

impl T5Encoder {
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        cfg.activation().map_err(candle_core::Error::msg)?;
        let embed_vb = if vb.contains_tensor("shared.weight") { vb.pp("shared") } else { vb.pp("encoder").pp("embed_tokens") };
        let embed = embedding(cfg.vocab_size, cfg.d_model, embed_vb)?;
        let enc = vb.pp("encoder");
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let layer = enc.pp("block").pp(i).pp("layer");
                let has_bias = cfg.per_layer_bias() || i == 0;
                Ok(T5Block {
                    attention: T5Attention::new(cfg, has_bias, layer.pp("0").pp("SelfAttention"))?,
                    attention_norm: T5LayerNorm::new(cfg.d_model, cfg.layer_norm_epsilon, layer.pp("0").pp("layer_norm"))?,
                    ff: T5FeedForward::new(cfg, layer.pp("1"))?,
                    ff_norm: T5LayerNorm::new(cfg.d_model, cfg.layer_norm_epsilon, layer.pp("1").pp("layer_norm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            embed,
            blocks,
            final_norm: T5LayerNorm::new(cfg.d_model, cfg.layer_norm_epsilon, enc.pp("final_layer_norm"))?,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// # Shapes
    /// `input_ids` `[B, L]` (u32/i64), `attention_mask` `[B, L]` (1 = token, 0 = padding) → `[B, L, d_model]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        if attention_mask.dims() != [b, l] {
            candle_core::bail!("attention_mask: expected [{b}, {l}], got {:?}", attention_mask.dims());
        }
        let device = input_ids.device();
        let dtype = self.embed.embeddings().dtype();
        // Padding keys get the most negative value, as transformers does.
        let mask = attention_mask.to_dtype(DType::F32)?;
        let padding = ((mask.affine(-1.0, 1.0)? * f32::MIN as f64)?).reshape((b, 1, 1, l))?.to_dtype(dtype)?;
        let mut x = self.embed.forward(&input_ids.to_dtype(DType::U32)?)?;
        let mut shared_bias: Option<Tensor> = None;
        for block in &self.blocks {
            let position = match block.attention.position_bias(l, device)? {
                Some(p) => {
                    shared_bias = Some(p.clone());
                    p
                }
                None => shared_bias.clone().expect("T5's first layer has the bias"),
            };
            let bias = position.to_dtype(dtype)?.broadcast_add(&padding)?;
            x = (&x + block.attention.forward(&block.attention_norm.forward(&x)?, &bias)?)?;
            x = (&x + block.ff.forward(&block.ff_norm.forward(&x)?)?)?;
        }
        self.final_norm.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_transformers_reference_values() {
        // Values from transformers' _relative_position_bucket (bidirectional, 32 buckets, max 128).
        let cases = [(0, 0), (1, 17), (-1, 1), (7, 23), (8, 24), (-8, 8), (20, 26), (-100, 15), (127, 31), (1000, 31)];
        for (rel, want) in cases {
            assert_eq!(relative_position_bucket(rel, 32, 128), want, "relative position {rel}");
        }
    }
}
