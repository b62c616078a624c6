//! `WanTransformer3DModel`: patchify → condition embeddings → N blocks of
//! (modulated self-attention with 3-D RoPE, cross-attention to the text,
//! modulated GELU feed-forward) → modulated output norm → unpatchify.
//!
//! Reference: diffusers `models/transformers/transformer_wan.py`.
//! Run one: `reel model run DIR --component transformer --inputs in.safetensors --output out.safetensors`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::layers::attention::attention;
use crate::layers::fast_math::gelu_tanh;
use crate::layers::embeddings::{timestep_sinusoids, TextProjection, TimestepEmbedding};
use crate::layers::norm::{layer_norm, rms_norm};
use crate::layers::rope::{apply_rope, wan_rope_tables, GridPositions};
use crate::layers::rows::{gated_add, linear, Linear};

/// Config keys as in diffusers' `transformer/config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WanTransformerConfig {
    /// (time, height, width) patch size of the patch embedding.
    pub patch_size: [usize; 3],
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    /// Latent channels in; more than `out_channels` when conditioning latents and a mask are concatenated.
    pub in_channels: usize,
    pub out_channels: Option<usize>,
    /// Width of the text encoder's hidden states.
    pub text_dim: usize,
    /// Width of the sinusoidal timestep embedding.
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    /// Affine layer norm before cross-attention.
    pub cross_attn_norm: bool,
    /// Always RMS norm across heads in Wan (kept for config compatibility).
    pub qk_norm: Option<String>,
    pub eps: f64,
    /// Image conditioning (Wan I2V): not supported yet.
    pub image_dim: Option<usize>,
    /// Image conditioning (Wan I2V): not supported yet.
    pub added_kv_proj_dim: Option<usize>,
    pub rope_max_seq_len: usize,
    pub pos_embed_seq_len: Option<usize>,
    /// Reel extra (off for Wan weights): an embedding of the frame rate added to the
    /// time embedding (`condition_embedder.fps_embedder`), for multi-frame-rate training.
    pub fps_conditioning: bool,
    /// Reel extra (off for Wan weights): absolute positions. Fixed sin-cos features of each
    /// token's (frame + frame offset, row, column) — CogVideoX-2B's 3-D positional embedding —
    /// go through a learnt, zero-initialised projection (`pos_embedding.weight`, `[dim, dim]`)
    /// and are added to the patch embeddings. RoPE alone gives attention relative positions
    /// only, so a token cannot tell where in the frame or clip it is unless its content says;
    /// from pure noise it cannot. A zero projection leaves a trained model's output unchanged.
    pub sincos_positions: bool,
}

impl Default for WanTransformerConfig {
    fn default() -> Self {
        Self {
            patch_size: [1, 2, 2],
            num_attention_heads: 40,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: Some(16),
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 13824,
            num_layers: 40,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".into()),
            eps: 1e-6,
            image_dim: None,
            added_kv_proj_dim: None,
            rope_max_seq_len: 1024,
            pos_embed_seq_len: None,
            fps_conditioning: false,
            sincos_positions: false,
        }
    }
}

impl WanTransformerConfig {
    /// Wan2.1 T2V 1.3B (`Wan-AI/Wan2.1-T2V-1.3B-Diffusers`).
    pub fn wan2_1_t2v_1_3b() -> Self {
        Self { num_attention_heads: 12, ffn_dim: 8960, num_layers: 30, ..Self::default() }
    }

    /// Wan2.1 T2V 14B.
    pub fn wan2_1_t2v_14b() -> Self {
        Self::default()
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Rejects configs this implementation cannot run, naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.image_dim.is_some() || self.added_kv_proj_dim.is_some() {
            return Err("image conditioning (image_dim / added_kv_proj_dim, Wan I2V) is not supported yet".into());
        }
        if self.patch_size.contains(&0) || self.num_attention_heads == 0 || self.num_layers == 0 {
            return Err("patch_size, num_attention_heads and num_layers must be positive".into());
        }
        if self.attention_head_dim % 2 == 1 || self.attention_head_dim < 6 {
            return Err(format!("attention_head_dim must be even and at least 6 for 3-D RoPE, got {}", self.attention_head_dim));
        }
        if self.sincos_positions && self.inner_dim() % 6 != 0 {
            return Err(format!("sincos_positions needs a width (heads × head dim) divisible by 6, got {}", self.inner_dim()));
        }
        Ok(())
    }
}

/// `[F·H·W, dim]` sin-cos features of each token's (frame + `frame_offset`, row, column), in
/// token order: a third of the width per axis, each half sines and half cosines of the
/// position at frequencies `10000^(−2i/(dim/3))`.
pub fn sincos_positions(dim: usize, grid: (usize, usize, usize), frame_offset: usize, device: &candle_core::Device) -> Result<Tensor> {
    let (f, h, w) = grid;
    let part = dim / 3;
    let half = part / 2;
    let freqs: Vec<f64> = (0..half).map(|i| 10000f64.powf(-(i as f64) / half as f64)).collect();
    let axis = |p: usize, out: &mut Vec<f32>| {
        out.extend(freqs.iter().map(|f| (p as f64 * f).sin() as f32));
        out.extend(freqs.iter().map(|f| (p as f64 * f).cos() as f32));
    };
    let mut values = Vec::with_capacity(f * h * w * dim);
    for t in 0..f {
        for y in 0..h {
            for x in 0..w {
                axis(t + frame_offset, &mut values);
                axis(y, &mut values);
                axis(x, &mut values);
            }
        }
    }
    Tensor::from_vec(values, (f * h * w, dim), device)
}

/// Keys and values from outside a clip, appended to its own in self-attention
/// (Video-Infinity's neighbouring and global frames), and a score bias over all keys.
#[derive(Clone, Debug)]
pub struct SelfAttentionExtras {
    /// `[B, heads, S_extra, head_dim]`, already normalised and rotated at their own positions.
    pub key: Tensor,
    pub value: Tensor,
    /// Additive score bias broadcastable to `[B, heads, S_own, S_own + S_extra]`.
    pub bias: Option<Tensor>,
}

/// Attention with Wan's projections and across-heads RMS norm on queries and keys.
#[derive(Clone, Debug)]
pub struct WanAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
    heads: usize,
    head_dim: usize,
    eps: f64,
}

impl WanAttention {
    pub fn new(dim: usize, heads: usize, head_dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: linear(dim, inner, vb.pp("to_q"))?,
            to_k: linear(dim, inner, vb.pp("to_k"))?,
            to_v: linear(dim, inner, vb.pp("to_v"))?,
            to_out: linear(inner, dim, vb.pp("to_out").pp("0"))?,
            norm_q: vb.pp("norm_q").get_with_hints(inner, "weight", candle_nn::Init::Const(1.0))?,
            norm_k: vb.pp("norm_k").get_with_hints(inner, "weight", candle_nn::Init::Const(1.0))?,
            heads,
            head_dim,
            eps,
        })
    }

    /// `[B, S, heads·head_dim]` → `[B, heads, S, head_dim]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        x.reshape((b, s, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// Normalised, rotated queries and keys, and values, for self-attention over `x` `[B, S, dim]`.
    pub fn self_qkv(&self, x: &Tensor, rope: &(Tensor, Tensor)) -> Result<(Tensor, Tensor, Tensor)> {
        let query = rms_norm(&self.to_q.forward(x)?, &self.norm_q, self.eps)?;
        let key = rms_norm(&self.to_k.forward(x)?, &self.norm_k, self.eps)?;
        let value = self.to_v.forward(x)?;
        let query = apply_rope(&self.split_heads(&query)?, &rope.0, &rope.1)?;
        let key = apply_rope(&self.split_heads(&key)?, &rope.0, &rope.1)?;
        Ok((query, key, self.split_heads(&value)?))
    }

    /// Attention output `[B, heads, S, head_dim]` → projected `[B, S, dim]`.
    fn merge(&self, out: &Tensor) -> Result<Tensor> {
        let (b, _, s, _) = out.dims4()?;
        self.to_out.forward(&out.transpose(1, 2)?.reshape((b, s, self.heads * self.head_dim))?)
    }

    /// Self-attention with 3-D RoPE; `extras` appends keys/values from outside the clip.
    pub fn forward_self(&self, x: &Tensor, rope: &(Tensor, Tensor), extras: Option<&SelfAttentionExtras>) -> Result<Tensor> {
        let (query, key, value) = self.self_qkv(x, rope)?;
        let out = match extras {
            None => attention(&query, &key, &value, None)?,
            Some(e) => {
                let key = Tensor::cat(&[&key, &e.key], 2)?;
                let value = Tensor::cat(&[&value, &e.value], 2)?;
                attention(&query, &key, &value, e.bias.as_ref())?
            }
        };
        self.merge(&out)
    }

    /// Cross-attention from `x` `[B, S, dim]` to `context` `[B, L, dim]`.
    pub fn forward_cross(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let query = self.split_heads(&rms_norm(&self.to_q.forward(x)?, &self.norm_q, self.eps)?)?;
        let key = self.split_heads(&rms_norm(&self.to_k.forward(context)?, &self.norm_k, self.eps)?)?;
        let value = self.split_heads(&self.to_v.forward(context)?)?;
        self.merge(&attention(&query, &key, &value, None)?)
    }
}

/// `net.0.proj → GELU(tanh) → net.2` (diffusers `FeedForward`, `gelu-approximate`).
#[derive(Clone, Debug)]
struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
}

impl FeedForward {
    fn new(dim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { proj_in: linear(dim, hidden, vb.pp("net").pp("0").pp("proj"))?, proj_out: linear(hidden, dim, vb.pp("net").pp("2"))? })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_out.forward(&gelu_tanh(&self.proj_in.forward(x)?)?)
    }
}

/// Fresh modulation tables, as diffusers initialises them: `randn / √dim`.
fn table_init(dim: usize) -> candle_nn::Init {
    candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 / (dim as f64).sqrt() }
}

/// `x·(1 + scale) + shift` after a parameter-free layer norm (in f32).
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor, eps: f64) -> Result<Tensor> {
    crate::layers::rows::modulate(&layer_norm(x, None, None, eps)?, shift, scale)
}

/// One Wan block.
#[derive(Clone, Debug)]
pub struct WanTransformerBlock {
    attn1: WanAttention,
    attn2: WanAttention,
    norm2: Option<(Tensor, Tensor)>,
    ffn: FeedForward,
    scale_shift_table: Tensor,
    eps: f64,
}

impl WanTransformerBlock {
    pub fn new(cfg: &WanTransformerConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let norm2 = if cfg.cross_attn_norm {
            Some((vb.pp("norm2").get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?, vb.pp("norm2").get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?))
        } else {
            None
        };
        Ok(Self {
            attn1: WanAttention::new(dim, heads, head_dim, cfg.eps, vb.pp("attn1"))?,
            attn2: WanAttention::new(dim, heads, head_dim, cfg.eps, vb.pp("attn2"))?,
            norm2,
            ffn: FeedForward::new(dim, cfg.ffn_dim, vb.pp("ffn"))?,
            scale_shift_table: vb.get_with_hints((1, 6, dim), "scale_shift_table", table_init(dim))?,
            eps: cfg.eps,
        })
    }

    pub fn self_attention(&self) -> &WanAttention {
        &self.attn1
    }

    /// # Shapes
    /// `x` `[B, S, dim]`, `context` `[B, L, dim]`, `time` `[B·G, 6, dim]`: one set of six
    /// modulation vectors per clip (G = 1) or per latent frame (G frames of `S / G` tokens each).
    pub fn forward(&self, x: &Tensor, context: &Tensor, time: &Tensor, rope: &(Tensor, Tensor), extras: Option<&SelfAttentionExtras>) -> Result<Tensor> {
        let (b, s, dim) = x.dims3()?;
        let groups = time.dim(0)? / b;
        // Tokens grouped as [B·G, S/G, dim], so that each group meets its own modulation.
        let grouped = |t: &Tensor| t.reshape((b * groups, s / groups, dim));
        let whole = |t: Tensor| t.reshape((b, s, dim));
        // 1. Six modulation vectors, each [B·G, 1, dim].
        let m = self.scale_shift_table.broadcast_add(&time.to_dtype(DType::F32)?)?;
        let part = |i: usize| m.narrow(1, i, 1);
        let (shift, scale, gate) = (part(0)?, part(1)?, part(2)?);
        let (c_shift, c_scale, c_gate) = (part(3)?, part(4)?, part(5)?);
        // 2. Modulated self-attention, gated residual.
        let attn = self.attn1.forward_self(&whole(modulate(&grouped(x)?, &shift, &scale, self.eps)?)?, rope, extras)?;
        let x = whole(gated_add(&grouped(x)?, &grouped(&attn)?, &gate)?)?;
        // 3. Cross-attention to the text, plain residual.
        let normed = match &self.norm2 {
            Some((w, b)) => layer_norm(&x, Some(w), Some(b), self.eps)?,
            None => x.clone(),
        };
        let x = (&x + self.attn2.forward_cross(&normed, context)?)?;
        // 4. Modulated feed-forward, gated residual.
        let ff = self.ffn.forward(&modulate(&grouped(&x)?, &c_shift, &c_scale, self.eps)?)?;
        whole(gated_add(&grouped(&x)?, &ff, &c_gate)?)
    }
}

/// Inputs of one forward pass.
#[derive(Clone, Debug)]
pub struct WanInput<'a> {
    /// Noisy latents `[B, in_channels, F, H, W]`.
    pub hidden_states: &'a Tensor,
    /// `[B]` timesteps (σ·1000), or `[B, F']` — one per latent frame after temporal
    /// patching — for clips whose frames are at different noise levels (a clean first frame
    /// at timestep 0 conditions the rest on it, as Wan2.2's TI2V does per token).
    pub timestep: &'a Tensor,
    /// Text encoder output `[B, L, text_dim]`.
    pub encoder_hidden_states: &'a Tensor,
    /// `[B]` frames per second, for models with `fps_conditioning`.
    pub fps: Option<&'a Tensor>,
    /// RoPE position of the first latent frame (0 for a whole video; a clip's start in long videos).
    pub frame_offset: usize,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct WanTransformer3DModel {
    config: WanTransformerConfig,
    patch_weight: Tensor,
    patch_bias: Tensor,
    time_embedder: TimestepEmbedding,
    time_proj: Linear,
    text_embedder: TextProjection,
    fps_embedder: Option<TimestepEmbedding>,
    /// `[dim, dim]`, with `sincos_positions`.
    pos_weight: Option<Tensor>,
    blocks: Vec<WanTransformerBlock>,
    proj_out: Linear,
    scale_shift_table: Tensor,
}

impl WanTransformer3DModel {
    pub fn new(cfg: &WanTransformerConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let dim = cfg.inner_dim();
        let [pt, ph, pw] = cfg.patch_size;
        let patch = vb.pp("patch_embedding");
        let patch_weight = patch
            .get_with_hints((dim, cfg.in_channels, pt, ph, pw), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?
            .reshape((dim, cfg.in_channels * pt * ph * pw))?;
        let ce = vb.pp("condition_embedder");
        let fps_embedder = if cfg.fps_conditioning {
            Some(TimestepEmbedding::zero_initialised(cfg.freq_dim, dim, ce.pp("fps_embedder"))?)
        } else {
            None
        };
        let pos_weight = if cfg.sincos_positions {
            Some(vb.pp("pos_embedding").get_with_hints((dim, dim), "weight", candle_nn::Init::Const(0.0))?)
        } else {
            None
        };
        let blocks = (0..cfg.num_layers)
            .map(|i| WanTransformerBlock::new(cfg, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: cfg.clone(),
            // Kept as the variable's own view (not a transposed copy), so that a training run's
            // updates reach the forward pass.
            patch_weight,
            patch_bias: patch.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
            time_embedder: TimestepEmbedding::new(cfg.freq_dim, dim, ce.pp("time_embedder"))?,
            time_proj: linear(dim, 6 * dim, ce.pp("time_proj"))?,
            text_embedder: TextProjection::new(cfg.text_dim, dim, ce.pp("text_embedder"))?,
            fps_embedder,
            pos_weight,
            blocks,
            proj_out: linear(dim, cfg.out_channels() * pt * ph * pw, vb.pp("proj_out"))?,
            scale_shift_table: vb.get_with_hints((1, 2, dim), "scale_shift_table", table_init(dim))?,
        })
    }

    pub fn config(&self) -> &WanTransformerConfig {
        &self.config
    }

    pub fn blocks(&self) -> &[WanTransformerBlock] {
        &self.blocks
    }

    fn check_input(&self, input: &WanInput) -> Result<(usize, usize, usize, usize)> {
        let c = &self.config;
        let dims = input.hidden_states.dims();
        let [pt, ph, pw] = c.patch_size;
        let ok = dims.len() == 5 && dims[1] == c.in_channels && dims[2] % pt == 0 && dims[3] % ph == 0 && dims[4] % pw == 0;
        if !ok {
            candle_core::bail!(
                "hidden_states: expected [B, {}, F, H, W] with F, H, W multiples of {:?}, got {:?}",
                c.in_channels,
                c.patch_size,
                dims
            );
        }
        let b = dims[0];
        let fp = dims[2] / pt;
        if input.timestep.dims() != [b] && input.timestep.dims() != [b, fp] {
            candle_core::bail!("timestep: expected [{b}] or [{b}, {fp}] (one per latent frame), got {:?}", input.timestep.dims());
        }
        let text = input.encoder_hidden_states.dims();
        if text.len() != 3 || text[0] != b || text[2] != c.text_dim {
            candle_core::bail!("encoder_hidden_states: expected [{b}, L, {}], got {text:?}", c.text_dim);
        }
        if c.fps_conditioning && input.fps.is_none_or(|f| f.dims() != [b]) {
            candle_core::bail!("fps: this model is frame-rate conditioned and needs a [{b}] fps tensor");
        }
        Ok((b, fp, dims[3] / ph, dims[4] / pw))
    }

    /// `[B, C, F, H, W]` → `[B, F'·H'·W', C·pt·ph·pw]` (tokens in frame, row, column order).
    fn patchify(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, f, h, w) = x.dims5()?;
        let [pt, ph, pw] = self.config.patch_size;
        let (fp, hp, wp) = (f / pt, h / ph, w / pw);
        x.reshape(vec![b, c, fp, pt, hp, ph, wp, pw])?
            .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape((b, fp * hp * wp, c * pt * ph * pw))
    }

    /// The inverse of the patch embedding's layout for the output projection.
    fn unpatchify(&self, x: &Tensor, grid: (usize, usize, usize, usize)) -> Result<Tensor> {
        let (b, fp, hp, wp) = grid;
        let [pt, ph, pw] = self.config.patch_size;
        let out = self.config.out_channels();
        x.reshape(vec![b, fp, hp, wp, pt, ph, pw, out])?
            .permute(vec![0, 7, 1, 4, 2, 5, 3, 6])?
            .reshape((b, out, fp * pt, hp * ph, wp * pw))
    }

    /// The time embedding `[B·G, dim]` (plus the fps embedding when configured), G = 1 for
    /// `[B]` timesteps and the latent frame count for `[B, F']`.
    fn time_embedding(&self, input: &WanInput) -> Result<Tensor> {
        let timestep = input.timestep.flatten_all()?;
        let groups = timestep.dim(0)? / input.timestep.dim(0)?;
        let mut temb = self.time_embedder.forward(&timestep_sinusoids(&timestep, self.config.freq_dim)?)?;
        if let (Some(embedder), Some(fps)) = (&self.fps_embedder, input.fps) {
            let b = fps.dim(0)?;
            let fps = fps.unsqueeze(1)?.broadcast_as((b, groups))?.flatten_all()?;
            temb = (temb + embedder.forward(&timestep_sinusoids(&fps, self.config.freq_dim)?)?)?;
        }
        Ok(temb)
    }

    /// Predicts the flow velocity.
    ///
    /// # Shapes
    /// `hidden_states` `[B, in_channels, F, H, W]` → `[B, out_channels, F, H, W]`.
    pub fn forward(&self, input: &WanInput) -> Result<Tensor> {
        let (b, fp, hp, wp) = self.check_input(input)?;
        let dim = self.config.inner_dim();
        let dtype = self.patch_weight.dtype();
        // 1. Patch embedding: [B, S, dim].
        let patches = self.patchify(&input.hidden_states.to_dtype(dtype)?)?;
        let mut x = patches.broadcast_matmul(&self.patch_weight.t()?)?.broadcast_add(&self.patch_bias)?;
        if let Some(w) = &self.pos_weight {
            let features = sincos_positions(dim, (fp, hp, wp), input.frame_offset, x.device())?.to_dtype(dtype)?;
            x = x.broadcast_add(&features.matmul(&w.t()?)?)?;
        }
        // 2. Conditions: time [B·G, dim] (G = 1, or one per latent frame) and its six
        // modulation vectors [B·G, 6, dim]; text [B, L, dim].
        let temb = self.time_embedding(input)?;
        let groups = temb.dim(0)? / b;
        let time = self.time_proj.forward(&temb.silu()?)?.reshape((b * groups, 6, dim))?;
        let context = self.text_embedder.forward(&input.encoder_hidden_states.to_dtype(dtype)?)?;
        // 3. Rotary tables for this grid.
        let grid = GridPositions { frames: fp, height: hp, width: wp, frame_offset: input.frame_offset };
        let rope = wan_rope_tables(self.config.attention_head_dim, grid, x.device())?;
        // 4. Blocks.
        for block in &self.blocks {
            x = block.forward(&x, &context, &time, &rope, None)?;
        }
        // 5. Output norm modulated by the time embedding, projection, unpatchify.
        let m = self.scale_shift_table.broadcast_add(&temb.unsqueeze(1)?)?;
        let (shift, scale) = (m.narrow(1, 0, 1)?, m.narrow(1, 1, 1)?);
        let s = fp * hp * wp;
        let x = modulate(&x.reshape((b * groups, s / groups, dim))?, &shift, &scale, self.config.eps)?.reshape((b, s, dim))?;
        let x = self.proj_out.forward(&x)?;
        self.unpatchify(&x, (b, fp, hp, wp))
    }
}
