//! BERT encoders (Devlin et al. 2019), including the sentence-transformers
//! MiniLM models (`all-MiniLM-L6-v2`): transformers' `BertModel` without the pooler.
//! Weight names are transformers' (optionally under a `bert.` prefix).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{embedding, linear, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::layers::norm::layer_norm;

/// Config keys as in transformers' `BertConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// `gelu` (exact), `gelu_new` (tanh) or `relu`.
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// Only `absolute` is supported.
    pub position_embedding_type: String,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: "absolute".into(),
        }
    }
}

impl BertConfig {
    /// `sentence-transformers/all-MiniLM-L6-v2`.
    pub fn all_minilm_l6_v2() -> Self {
        Self { hidden_size: 384, num_hidden_layers: 6, intermediate_size: 1536, ..Self::default() }
    }
}

#[derive(Clone, Debug)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Norm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?, bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?, eps })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, Some(&self.weight), Some(&self.bias), self.eps)
    }
}

#[derive(Clone, Debug)]
struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct BertEncoder {
    config: BertConfig,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embeddings_norm: Norm,
    layers: Vec<BertLayer>,
}

impl BertEncoder {
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.position_embedding_type != "absolute" {
            candle_core::bail!("position_embedding_type '{}' is not supported (absolute)", cfg.position_embedding_type);
        }
        if !matches!(cfg.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            candle_core::bail!("hidden_act '{}' is not supported (gelu, gelu_new, relu)", cfg.hidden_act);
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp("encoder").pp("layer").pp(i);
                let a = l.pp("attention");
                Ok(BertLayer {
                    query: linear(h, h, a.pp("self").pp("query"))?,
                    key: linear(h, h, a.pp("self").pp("key"))?,
                    value: linear(h, h, a.pp("self").pp("value"))?,
                    attention_out: linear(h, h, a.pp("output").pp("dense"))?,
                    attention_norm: Norm::new(h, eps, a.pp("output").pp("LayerNorm"))?,
                    intermediate: linear(h, cfg.intermediate_size, l.pp("intermediate").pp("dense"))?,
                    output: linear(cfg.intermediate_size, h, l.pp("output").pp("dense"))?,
                    output_norm: Norm::new(h, eps, l.pp("output").pp("LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            word: embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            position: embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embeddings_norm: Norm::new(h, eps, e.pp("LayerNorm"))?,
            layers,
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        match self.config.hidden_act.as_str() {
            "gelu" => x.gelu_erf(),
            "gelu_new" => x.gelu(),
            _ => x.relu(),
        }
    }

    /// # Shapes
    /// `input_ids`, `attention_mask` `[B, L]` → `[B, L, hidden_size]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        if l > self.config.max_position_embeddings {
            candle_core::bail!("input_ids: {l} tokens, more than max_position_embeddings {}", self.config.max_position_embeddings);
        }
        if attention_mask.dims() != [b, l] {
            candle_core::bail!("attention_mask: expected [{b}, {l}], got {:?}", attention_mask.dims());
        }
        let device = input_ids.device();
        let ids = input_ids.to_dtype(DType::U32)?;
        let positions = Tensor::arange(0u32, l as u32, device)?.unsqueeze(0)?;
        let types = Tensor::zeros((b, l), DType::U32, device)?;
        let x = self.word.forward(&ids)?.broadcast_add(&self.position.forward(&positions)?)?.add(&self.token_type.forward(&types)?)?;
        let mut x = self.embeddings_norm.forward(&x)?;
        let heads = self.config.num_attention_heads;
        let d = self.config.hidden_size / heads;
        let mask = attention_mask.to_dtype(DType::F32)?;
        let padding = (mask.affine(-1.0, 1.0)? * f32::MIN as f64)?.reshape((b, 1, 1, l))?.to_dtype(x.dtype())?;
        let split = |t: Tensor| -> Result<Tensor> { t.reshape((b, l, heads, d))?.transpose(1, 2)?.contiguous() };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(&padding)?;
            let ctx = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, l, heads * d))?;
            let attended = layer.attention_norm.forward(&(layer.attention_out.forward(&ctx)? + &x)?)?;
            let h = layer.output.forward(&self.act(&layer.intermediate.forward(&attended)?)?)?;
            x = layer.output_norm.forward(&(h + attended)?)?;
        }
        Ok(x)
    }
}

/// Mean of the token states where `attention_mask` is 1 (sentence-transformers' mean pooling).
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.maximum(1e-9)?;
    summed.broadcast_div(&counts)
}
