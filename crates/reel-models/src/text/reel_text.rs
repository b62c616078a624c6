//! Reel's own small text encoder, trained with Reel's models: token and learned
//! position embeddings, pre-norm transformer layers (self-attention, GELU MLP),
//! a final layer norm. `model_type: "reel-text"`; tokenised by a word-level
//! `tokenizer.json` (see [`super::tokenizer::TextTokenizer::word_level`]).

use candle_core::{DType, Module, Result, Tensor};
use crate::layers::rows::{linear, Linear};
use candle_nn::{embedding, Embedding, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::layers::attention::attention;
use crate::layers::norm::layer_norm;

/// `text_encoder/config.json` of a Reel model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReelTextConfig {
    /// Always `reel-text`.
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
}

impl Default for ReelTextConfig {
    fn default() -> Self {
        Self {
            model_type: "reel-text".into(),
            vocab_size: 256,
            hidden_size: 128,
            num_layers: 2,
            num_heads: 4,
            intermediate_size: 256,
            max_position_embeddings: 64,
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Clone, Debug)]
struct Norm(Tensor, Tensor, f64);

impl Norm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self(vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?, vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?, eps))
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, Some(&self.0), Some(&self.1), self.2)
    }
}

#[derive(Clone, Debug)]
struct Layer {
    norm1: Norm,
    qkv: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct ReelTextEncoder {
    config: ReelTextConfig,
    token: Embedding,
    position: Embedding,
    layers: Vec<Layer>,
    norm: Norm,
}

impl ReelTextEncoder {
    /// Builds the encoder; with a `VarMap`-backed builder this initialises fresh weights.
    pub fn new(cfg: &ReelTextConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.hidden_size % cfg.num_heads != 0 {
            candle_core::bail!("hidden_size {} is not a multiple of num_heads {}", cfg.hidden_size, cfg.num_heads);
        }
        let h = cfg.hidden_size;
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let l = vb.pp("layers").pp(i);
                Ok(Layer {
                    norm1: Norm::new(h, cfg.layer_norm_eps, l.pp("norm1"))?,
                    qkv: linear(h, 3 * h, l.pp("qkv"))?,
                    out: linear(h, h, l.pp("out"))?,
                    norm2: Norm::new(h, cfg.layer_norm_eps, l.pp("norm2"))?,
                    fc1: linear(h, cfg.intermediate_size, l.pp("fc1"))?,
                    fc2: linear(cfg.intermediate_size, h, l.pp("fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            token: embedding(cfg.vocab_size, h, vb.pp("embeddings").pp("token"))?,
            position: embedding(cfg.max_position_embeddings, h, vb.pp("embeddings").pp("position"))?,
            layers,
            norm: Norm::new(h, cfg.layer_norm_eps, vb.pp("norm"))?,
        })
    }

    pub fn config(&self) -> &ReelTextConfig {
        &self.config
    }

    /// # Shapes
    /// `input_ids`, `attention_mask` `[B, L]` → `[B, L, hidden_size]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        if l > self.config.max_position_embeddings {
            candle_core::bail!("input_ids: {l} tokens, more than max_position_embeddings {}", self.config.max_position_embeddings);
        }
        let device = input_ids.device();
        let positions = Tensor::arange(0u32, l as u32, device)?.unsqueeze(0)?;
        let mut x = self.token.forward(&input_ids.to_dtype(DType::U32)?)?.broadcast_add(&self.position.forward(&positions)?)?;
        let heads = self.config.num_heads;
        let d = self.config.hidden_size / heads;
        let bias = (attention_mask.to_dtype(DType::F32)?.affine(-1.0, 1.0)? * -1e9)?.reshape((b, 1, 1, l))?.to_dtype(x.dtype())?;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&layer.norm1.forward(&x)?)?.reshape((b, l, 3, heads, d))?.permute((2, 0, 3, 1, 4))?;
            let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
            let ctx = attention(&q, &k, &v, Some(&bias))?.transpose(1, 2)?.reshape((b, l, heads * d))?;
            x = (&x + layer.out.forward(&ctx)?)?;
            x = (&x + layer.fc2.forward(&crate::layers::fast_math::gelu_tanh(&layer.fc1.forward(&layer.norm2.forward(&x)?)?)?)?)?;
        }
        self.norm.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn fresh_encoder_runs_and_masks_padding() -> Result<()> {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let cfg = ReelTextConfig { vocab_size: 20, hidden_size: 16, num_heads: 2, intermediate_size: 32, max_position_embeddings: 8, ..Default::default() };
        let enc = ReelTextEncoder::new(&cfg, vb)?;
        let ids = Tensor::new(&[[3u32, 4, 5, 0], [3, 4, 5, 9]], &Device::Cpu)?;
        let mask = Tensor::new(&[[1u32, 1, 1, 0], [1, 1, 1, 1]], &Device::Cpu)?;
        let out = enc.forward(&ids, &mask)?;
        assert_eq!(out.dims(), [2, 4, 16]);
        // The first three tokens of row 0 ignore its padding: identical to a 3-token input.
        let short = enc.forward(&ids.narrow(1, 0, 3)?.narrow(0, 0, 1)?, &mask.narrow(1, 0, 3)?.narrow(0, 0, 1)?)?;
        let diff = (out.narrow(0, 0, 1)?.narrow(1, 0, 3)? - short)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn saved_weights_load_back_through_the_generic_loader() -> Result<()> {
        let map = VarMap::new();
        let cfg = ReelTextConfig { vocab_size: 12, hidden_size: 8, num_heads: 2, intermediate_size: 16, max_position_embeddings: 6, ..Default::default() };
        let enc = ReelTextEncoder::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu))?;
        let dir = tempfile::tempdir().unwrap();
        map.save(dir.path().join("model.safetensors"))?;
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
        let loaded = crate::load_text_encoder(dir.path(), DType::F32, &Device::Cpu).unwrap();
        let ids = Tensor::new(&[[1u32, 5, 7]], &Device::Cpu)?;
        let mask = Tensor::ones((1, 3), DType::U32, &Device::Cpu)?;
        let diff = (enc.forward(&ids, &mask)? - loaded.encode(&ids, &mask)?)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
