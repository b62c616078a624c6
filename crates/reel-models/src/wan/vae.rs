//! `AutoencoderKLWan` (the Wan2.1 variant): a causal 3-D VAE, 8× spatial and
//! 4× temporal compression. The first frame is encoded alone, then chunks of
//! four; decoding goes one latent frame at a time. Every causal convolution
//! keeps the last two frames it saw in a feature cache, so chunks join
//! seamlessly and memory does not grow with the length of the video.
//!
//! Reference: diffusers `models/autoencoders/autoencoder_kl_wan.py`.

use candle_core::{DType, IndexOp, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::layers::conv::{conv2d, conv3d, ConvWeight};
use serde::{Deserialize, Serialize};

/// Frames each causal convolution remembers.
const CACHE_T: usize = 2;
/// Frames per encoder chunk after the first (diffusers' value, whatever the temporal ratio).
const ENCODE_CHUNK: usize = 4;

/// Config keys as in diffusers' `vae/config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WanVaeConfig {
    pub base_dim: usize,
    pub decoder_base_dim: Option<usize>,
    pub z_dim: usize,
    pub dim_mult: Vec<usize>,
    pub num_res_blocks: usize,
    pub attn_scales: Vec<f64>,
    /// Per down stage: whether it also halves time ("temperal" is upstream's spelling).
    pub temperal_downsample: Vec<bool>,
    pub dropout: f64,
    /// Per-channel statistics the pipeline normalises latents with.
    pub latents_mean: Vec<f64>,
    pub latents_std: Vec<f64>,
    /// Wan2.2's residual variant: not supported.
    pub is_residual: bool,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Wan2.2's patchified variant: not supported.
    pub patch_size: Option<usize>,
    pub scale_factor_temporal: Option<usize>,
    pub scale_factor_spatial: Option<usize>,
}

impl Default for WanVaeConfig {
    fn default() -> Self {
        Self {
            base_dim: 96,
            decoder_base_dim: None,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attn_scales: vec![],
            temperal_downsample: vec![false, true, true],
            dropout: 0.0,
            latents_mean: vec![
                -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
            ],
            latents_std: vec![
                2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
            ],
            is_residual: false,
            in_channels: 3,
            out_channels: 3,
            patch_size: None,
            scale_factor_temporal: Some(4),
            scale_factor_spatial: Some(8),
        }
    }
}

impl WanVaeConfig {
    /// Wan2.1's VAE (`Wan-AI/Wan2.1-T2V-1.3B-Diffusers/vae`).
    pub fn wan2_1() -> Self {
        Self::default()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.is_residual || self.patch_size.is_some() {
            return Err("the Wan2.2 VAE variant (is_residual / patch_size) is not supported yet".into());
        }
        if !self.attn_scales.is_empty() {
            // Wan ships `attn_scales: []`; diffusers' encoder cannot run other values either.
            return Err(format!("attn_scales must be [] (Wan's value), got {:?}", self.attn_scales));
        }
        if self.dim_mult.is_empty() || self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return Err(format!(
                "temperal_downsample needs one entry per down stage ({}), got {}",
                self.dim_mult.len().saturating_sub(1),
                self.temperal_downsample.len()
            ));
        }
        if ENCODE_CHUNK % self.temporal_ratio() != 0 {
            return Err(format!("a temporal compression of {} does not divide the 4-frame encoder chunks", self.temporal_ratio()));
        }
        for (name, stats) in [("latents_mean", &self.latents_mean), ("latents_std", &self.latents_std)] {
            if !stats.is_empty() && stats.len() != self.z_dim {
                return Err(format!("{name} has {} entries for z_dim {}", stats.len(), self.z_dim));
            }
        }
        Ok(())
    }

    /// Pixels per latent pixel.
    pub fn spatial_ratio(&self) -> usize {
        1 << (self.dim_mult.len() - 1)
    }

    /// Frames per latent frame (after the first).
    pub fn temporal_ratio(&self) -> usize {
        1 << self.temperal_downsample.iter().filter(|&&t| t).count()
    }
}

// ---------------------------------------------------------------- the feature cache

#[derive(Clone, Debug)]
enum CacheEntry {
    Empty,
    /// Upsample3d's marker for "first chunk seen, not temporally upsampled".
    Rep,
    Frames(Tensor),
}

/// One slot per cached convolution, visited in the same order for every chunk.
#[derive(Debug, Default)]
pub struct FeatureCache {
    entries: Vec<CacheEntry>,
    next: usize,
}

impl FeatureCache {
    /// Starts a new chunk: slots are visited from the first again.
    fn rewind(&mut self) {
        self.next = 0;
    }

    fn take_slot(&mut self) -> usize {
        if self.next == self.entries.len() {
            self.entries.push(CacheEntry::Empty);
        }
        self.next += 1;
        self.next - 1
    }
}

fn last_frames(x: &Tensor, n: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    x.narrow(2, t.saturating_sub(n), n.min(t))
}

// ---------------------------------------------------------------- layers

/// A Conv3d that pads only in the past (time) and can prepend cached frames instead of zeros.
#[derive(Clone, Debug)]
struct CausalConv3d {
    weight: ConvWeight,
    kt: usize,
    stride_t: usize,
    /// (time padding before, spatial padding each side).
    pad_t: usize,
    pad_s: usize,
}

impl CausalConv3d {
    /// `kernel`/`stride`/`padding` as (t, h, w); spatial values must be equal in h and w.
    fn new(in_c: usize, out_c: usize, kernel: [usize; 3], stride: [usize; 3], padding: [usize; 3], vb: VarBuilder) -> Result<Self> {
        let [kt, kh, kw] = kernel;
        assert!(padding[1] == padding[2] && stride[1] == 1 && stride[2] == 1, "Wan's convolutions are square, spatial stride 1");
        let weight = vb.get_with_hints((out_c, in_c, kt, kh, kw), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let weight = ConvWeight::new(&weight, Some(vb.get_with_hints(out_c, "bias", candle_nn::Init::Const(0.0))?))?;
        Ok(Self { weight, kt, stride_t: stride[0], pad_t: 2 * padding[0], pad_s: padding[1] })
    }

    fn cubic(in_c: usize, out_c: usize, k: usize, pad: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(in_c, out_c, [k, k, k], [1, 1, 1], [pad, pad, pad], vb)
    }

    /// # Shapes
    /// `[B, C, T, H, W]` → `[B, out, T', H', W']`.
    fn forward(&self, x: &Tensor, cache: Option<&Tensor>) -> Result<Tensor> {
        if cache.is_none() && x.dim(2)? == 1 && self.pad_t + 1 == self.kt && self.stride_t == 1 && self.kt > 1 {
            // One frame after zero padding (an image, a video's first frame): only the last
            // time tap sees data; skipping the others is exact and `kt` times cheaper.
            let x = if self.pad_s > 0 { x.pad_with_zeros(3, self.pad_s, self.pad_s)?.pad_with_zeros(4, self.pad_s, self.pad_s)? } else { x.clone() };
            return conv3d(&x, &self.weight.last_time_tap()?, [1, 1, 1]);
        }
        let mut pad = self.pad_t;
        let mut x = x.clone();
        if let (Some(c), true) = (cache, self.pad_t > 0) {
            pad -= c.dim(2)?.min(pad);
            x = Tensor::cat(&[c, &x], 2)?;
        }
        if pad > 0 {
            x = x.pad_with_zeros(2, pad, 0)?;
        }
        if self.pad_s > 0 {
            x = x.pad_with_zeros(3, self.pad_s, self.pad_s)?.pad_with_zeros(4, self.pad_s, self.pad_s)?;
        }
        if x.dim(2)? < self.kt {
            candle_core::bail!("causal conv: {} frames for a temporal kernel of {}", x.dim(2)?, self.kt);
        }
        conv3d(&x, &self.weight, [self.stride_t, 1, 1])
    }

    /// Runs with the feature cache: remembers the last two input frames for the next chunk.
    fn forward_cached(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let slot = cache.take_slot();
        let previous = match &cache.entries[slot] {
            CacheEntry::Frames(t) => Some(t.clone()),
            _ => None,
        };
        let mut keep = last_frames(x, CACHE_T)?;
        if keep.dim(2)? < CACHE_T {
            if let Some(p) = &previous {
                keep = Tensor::cat(&[&last_frames(p, 1)?, &keep], 2)?;
            }
        }
        let y = self.forward(x, previous.as_ref())?;
        cache.entries[slot] = CacheEntry::Frames(keep);
        Ok(y)
    }
}

/// `F.normalize` over channels × √C × γ (diffusers `WanRMS_norm`), in f32.
#[derive(Clone, Debug)]
struct ChannelRmsNorm {
    gamma: Tensor,
    scale: f64,
}

impl ChannelRmsNorm {
    /// `images`: the input is `[N, C, H, W]` rather than `[B, C, T, H, W]`.
    fn new(dim: usize, images: bool, vb: VarBuilder) -> Result<Self> {
        let one = candle_nn::Init::Const(1.0);
        let gamma = if images { vb.get_with_hints((dim, 1, 1), "gamma", one)? } else { vb.get_with_hints((dim, 1, 1, 1), "gamma", one)? };
        Ok(Self { gamma: gamma.flatten_all()?, scale: (dim as f64).sqrt() })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        crate::layers::channel::channel_rms_norm(&x, &self.gamma.to_dtype(DType::F32)?, self.scale)?.to_dtype(dtype)
    }
}

/// `[B, C, T, H, W]` ↔ `[B·T, C, H, W]` for per-frame 2-D layers.
fn frames_to_batch(x: &Tensor) -> Result<(Tensor, usize)> {
    let (b, c, t, h, w) = x.dims5()?;
    Ok((x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?, b))
}

fn batch_to_frames(x: &Tensor, b: usize) -> Result<Tensor> {
    let (bt, c, h, w) = x.dims4()?;
    x.reshape((b, bt / b, c, h, w))?.permute((0, 2, 1, 3, 4))?.contiguous()
}

#[derive(Clone, Debug)]
struct Conv2d(ConvWeight);

impl Conv2d {
    fn new(in_c: usize, out_c: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out_c, in_c, k, k), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        Ok(Self(ConvWeight::new(&weight, Some(vb.get_with_hints(out_c, "bias", candle_nn::Init::Const(0.0))?))?))
    }

    fn forward(&self, x: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
        conv2d(x, &self.0, padding, stride)
    }
}

#[derive(Clone, Debug)]
struct ResidualBlock {
    norm1: ChannelRmsNorm,
    conv1: CausalConv3d,
    norm2: ChannelRmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let shortcut = if in_dim != out_dim { Some(CausalConv3d::cubic(in_dim, out_dim, 1, 0, vb.pp("conv_shortcut"))?) } else { None };
        Ok(Self {
            norm1: ChannelRmsNorm::new(in_dim, false, vb.pp("norm1"))?,
            conv1: CausalConv3d::cubic(in_dim, out_dim, 3, 1, vb.pp("conv1"))?,
            norm2: ChannelRmsNorm::new(out_dim, false, vb.pp("norm2"))?,
            conv2: CausalConv3d::cubic(out_dim, out_dim, 3, 1, vb.pp("conv2"))?,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x, None)?,
            None => x.clone(),
        };
        let y = self.conv1.forward_cached(&self.norm1.forward(x)?.silu()?, cache)?;
        let y = self.conv2.forward_cached(&self.norm2.forward(&y)?.silu()?, cache)?;
        y + h
    }
}

/// Single-head spatial self-attention within each frame.
#[derive(Clone, Debug)]
struct AttentionBlock {
    norm: ChannelRmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: ChannelRmsNorm::new(dim, true, vb.pp("norm"))?,
            to_qkv: Conv2d::new(dim, 3 * dim, 1, vb.pp("to_qkv"))?,
            proj: Conv2d::new(dim, dim, 1, vb.pp("proj"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (frames, b) = frames_to_batch(x)?;
        let (n, c, h, w) = frames.dims4()?;
        let qkv = self.to_qkv.forward(&self.norm.forward(&frames)?, 0, 1)?;
        // [N, 3C, HW] → [N, 1, HW, 3C] → q, k, v.
        let qkv = qkv.reshape((n, 3 * c, h * w))?.transpose(1, 2)?.unsqueeze(1)?;
        let (q, k, v) = (qkv.narrow(D::Minus1, 0, c)?, qkv.narrow(D::Minus1, c, c)?, qkv.narrow(D::Minus1, 2 * c, c)?);
        let out = crate::layers::attention::attention(&q.contiguous()?, &k.contiguous()?, &v.contiguous()?, None)?;
        let out = out.squeeze(1)?.transpose(1, 2)?.reshape((n, c, h, w))?;
        let out = self.proj.forward(&out, 0, 1)?;
        batch_to_frames(&out, b)? + x
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResampleMode {
    Upsample2d,
    Upsample3d,
    Downsample2d,
    Downsample3d,
}

#[derive(Clone, Debug)]
struct Resample {
    mode: ResampleMode,
    conv: Conv2d,
    time_conv: Option<CausalConv3d>,
}

impl Resample {
    fn new(dim: usize, mode: ResampleMode, upsample_out: usize, vb: VarBuilder) -> Result<Self> {
        let out = match mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => upsample_out,
            _ => dim,
        };
        let time_conv = match mode {
            ResampleMode::Upsample3d => Some(CausalConv3d::new(dim, 2 * dim, [3, 1, 1], [1, 1, 1], [1, 0, 0], vb.pp("time_conv"))?),
            ResampleMode::Downsample3d => Some(CausalConv3d::new(dim, dim, [3, 1, 1], [2, 1, 1], [0, 0, 0], vb.pp("time_conv"))?),
            _ => None,
        };
        Ok(Self { mode, conv: Conv2d::new(dim, out, 3, vb.pp("resample").pp("1"))?, time_conv })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let mut x = x.clone();
        if self.mode == ResampleMode::Upsample3d {
            let slot = cache.take_slot();
            match cache.entries[slot].clone() {
                CacheEntry::Empty => cache.entries[slot] = CacheEntry::Rep,
                previous => {
                    let mut keep = last_frames(&x, CACHE_T)?;
                    if keep.dim(2)? < CACHE_T {
                        let before = match &previous {
                            CacheEntry::Frames(p) => last_frames(p, 1)?,
                            _ => keep.zeros_like()?,
                        };
                        keep = Tensor::cat(&[&before, &keep], 2)?;
                    }
                    let conv = self.time_conv.as_ref().expect("upsample3d has a time conv");
                    let y = match &previous {
                        CacheEntry::Frames(p) => conv.forward(&x, Some(p))?,
                        _ => conv.forward(&x, None)?,
                    };
                    cache.entries[slot] = CacheEntry::Frames(keep);
                    // [B, 2C, T, H, W] → two frames per input frame, interleaved in time.
                    let (b, c2, t, h, w) = y.dims5()?;
                    let c = c2 / 2;
                    x = y.reshape((b, 2, c, t, h, w))?.permute((0, 2, 3, 1, 4, 5))?.reshape((b, c, 2 * t, h, w))?;
                }
            }
        }
        let (frames, b) = frames_to_batch(&x)?;
        let frames = match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                let (_, _, h, w) = frames.dims4()?;
                self.conv.forward(&frames.upsample_nearest2d(2 * h, 2 * w)?, 1, 1)?
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => {
                let padded = frames.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
                self.conv.forward(&padded, 0, 2)?
            }
        };
        let mut x = batch_to_frames(&frames, b)?;
        if self.mode == ResampleMode::Downsample3d {
            let slot = cache.take_slot();
            match cache.entries[slot].clone() {
                CacheEntry::Frames(p) => {
                    let keep = last_frames(&x, 1)?;
                    let conv = self.time_conv.as_ref().expect("downsample3d has a time conv");
                    x = conv.forward(&Tensor::cat(&[&last_frames(&p, 1)?, &x], 2)?, None)?;
                    cache.entries[slot] = CacheEntry::Frames(keep);
                }
                _ => cache.entries[slot] = CacheEntry::Frames(x.clone()),
            }
        }
        Ok(x)
    }
}

#[derive(Clone, Debug)]
enum Layer {
    Residual(ResidualBlock),
    Resample(Resample),
}

impl Layer {
    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        match self {
            Self::Residual(r) => r.forward(x, cache),
            Self::Resample(r) => r.forward(x, cache),
        }
    }
}

#[derive(Clone, Debug)]
struct MidBlock {
    first: ResidualBlock,
    attention: AttentionBlock,
    second: ResidualBlock,
}

impl MidBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            first: ResidualBlock::new(dim, dim, vb.pp("resnets").pp("0"))?,
            attention: AttentionBlock::new(dim, vb.pp("attentions").pp("0"))?,
            second: ResidualBlock::new(dim, dim, vb.pp("resnets").pp("1"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let x = self.first.forward(x, cache)?;
        let x = self.attention.forward(&x)?;
        self.second.forward(&x, cache)
    }
}

// ---------------------------------------------------------------- encoder and decoder

#[derive(Clone, Debug)]
struct Encoder {
    conv_in: CausalConv3d,
    layers: Vec<Layer>,
    mid: MidBlock,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Encoder {
    fn new(cfg: &WanVaeConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.base_dim;
        let dims: Vec<usize> = std::iter::once(1).chain(cfg.dim_mult.iter().copied()).map(|m| dim * m).collect();
        let mut layers = Vec::new();
        let down = vb.pp("down_blocks");
        for (i, pair) in dims.windows(2).enumerate() {
            let (mut in_dim, out_dim) = (pair[0], pair[1]);
            for _ in 0..cfg.num_res_blocks {
                layers.push(Layer::Residual(ResidualBlock::new(in_dim, out_dim, down.pp(layers.len()))?));
                in_dim = out_dim;
            }
            if i != cfg.dim_mult.len() - 1 {
                let mode = if cfg.temperal_downsample[i] { ResampleMode::Downsample3d } else { ResampleMode::Downsample2d };
                layers.push(Layer::Resample(Resample::new(out_dim, mode, out_dim, down.pp(layers.len()))?));
            }
        }
        let out_dim = *dims.last().expect("dims");
        Ok(Self {
            conv_in: CausalConv3d::cubic(cfg.in_channels, dims[0], 3, 1, vb.pp("conv_in"))?,
            layers,
            mid: MidBlock::new(out_dim, vb.pp("mid_block"))?,
            norm_out: ChannelRmsNorm::new(out_dim, false, vb.pp("norm_out"))?,
            conv_out: CausalConv3d::cubic(out_dim, 2 * cfg.z_dim, 3, 1, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let mut x = self.conv_in.forward_cached(x, cache)?;
        for layer in &self.layers {
            x = layer.forward(&x, cache)?;
        }
        let x = self.mid.forward(&x, cache)?;
        self.conv_out.forward_cached(&self.norm_out.forward(&x)?.silu()?, cache)
    }
}

#[derive(Clone, Debug)]
struct UpBlock {
    resnets: Vec<ResidualBlock>,
    upsampler: Option<Resample>,
}

#[derive(Clone, Debug)]
struct Decoder {
    conv_in: CausalConv3d,
    mid: MidBlock,
    up_blocks: Vec<UpBlock>,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Decoder {
    fn new(cfg: &WanVaeConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.decoder_base_dim.unwrap_or(cfg.base_dim);
        let mult = &cfg.dim_mult;
        let dims: Vec<usize> = std::iter::once(*mult.last().expect("dim_mult")).chain(mult.iter().rev().copied()).map(|m| dim * m).collect();
        let upsample: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
        let mut up_blocks = Vec::new();
        for (i, pair) in dims.windows(2).enumerate() {
            let (mut in_dim, out_dim) = (pair[0], pair[1]);
            if i > 0 {
                in_dim /= 2;
            }
            let vb_block = vb.pp("up_blocks").pp(i);
            let mut resnets = Vec::new();
            for j in 0..=cfg.num_res_blocks {
                resnets.push(ResidualBlock::new(in_dim, out_dim, vb_block.pp("resnets").pp(j))?);
                in_dim = out_dim;
            }
            let upsampler = if i != mult.len() - 1 {
                let mode = if upsample[i] { ResampleMode::Upsample3d } else { ResampleMode::Upsample2d };
                Some(Resample::new(out_dim, mode, out_dim / 2, vb_block.pp("upsamplers").pp("0"))?)
            } else {
                None
            };
            up_blocks.push(UpBlock { resnets, upsampler });
        }
        let out_dim = *dims.last().expect("dims");
        Ok(Self {
            conv_in: CausalConv3d::cubic(cfg.z_dim, dims[0], 3, 1, vb.pp("conv_in"))?,
            mid: MidBlock::new(dims[0], vb.pp("mid_block"))?,
            up_blocks,
            norm_out: ChannelRmsNorm::new(out_dim, false, vb.pp("norm_out"))?,
            conv_out: CausalConv3d::cubic(out_dim, cfg.out_channels, 3, 1, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatureCache) -> Result<Tensor> {
        let x = self.conv_in.forward_cached(x, cache)?;
        let mut x = self.mid.forward(&x, cache)?;
        for block in &self.up_blocks {
            for r in &block.resnets {
                x = r.forward(&x, cache)?;
            }
            if let Some(u) = &block.upsampler {
                x = u.forward(&x, cache)?;
            }
        }
        self.conv_out.forward_cached(&self.norm_out.forward(&x)?.silu()?, cache)
    }
}

// ---------------------------------------------------------------- the model

/// The posterior of an encoded video: `[B, z, T, H, W]` each.
#[derive(Clone, Debug)]
pub struct LatentDistribution {
    pub mean: Tensor,
    /// Clamped to [−30, 20], as diffusers does.
    pub logvar: Tensor,
}

/// Spatial tiling for frames too large to process whole (sizes in pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    pub tile: usize,
    pub stride: usize,
}

impl Default for Tiling {
    /// diffusers' defaults: 256-pixel tiles every 192 pixels (64 pixels blended).
    fn default() -> Self {
        Self { tile: 256, stride: 192 }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct AutoencoderKLWan {
    config: WanVaeConfig,
    encoder: Encoder,
    quant_conv: CausalConv3d,
    post_quant_conv: CausalConv3d,
    decoder: Decoder,
    tiling: Option<Tiling>,
}

impl AutoencoderKLWan {
    pub fn new(cfg: &WanVaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let z = cfg.z_dim;
        Ok(Self {
            config: cfg.clone(),
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            quant_conv: CausalConv3d::cubic(2 * z, 2 * z, 1, 0, vb.pp("quant_conv"))?,
            post_quant_conv: CausalConv3d::cubic(z, z, 1, 0, vb.pp("post_quant_conv"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            tiling: None,
        })
    }

    pub fn config(&self) -> &WanVaeConfig {
        &self.config
    }

    /// Process frames larger than the tile in overlapping tiles (diffusers' `enable_tiling`).
    pub fn with_tiling(mut self, tiling: Option<Tiling>) -> Self {
        self.tiling = tiling;
        self
    }

    fn check_video(&self, x: &Tensor) -> Result<(usize, usize, usize)> {
        let dims = x.dims();
        let r = self.config.spatial_ratio();
        let ok = dims.len() == 5 && dims[2] > 0 && (dims[2] - 1) % ENCODE_CHUNK == 0;
        if !ok || dims[1] != self.config.in_channels || dims[3] % r != 0 || dims[4] % r != 0 {
            candle_core::bail!(
                "sample: expected [B, {}, 4k+1 frames, H, W] with H and W multiples of {r}, got {dims:?}",
                self.config.in_channels
            );
        }
        Ok((dims[2], dims[3], dims[4]))
    }

    /// Encodes `[B, 3, 1+4k, H, W]` pixels in [−1, 1] into the latent posterior
/// `[B, z, 1 + 4k/ratio, H/8, W/8]` (`[B, 16, 1+k, H/8, W/8]` for Wan2.1).
    pub fn encode(&self, x: &Tensor) -> Result<LatentDistribution> {
        let (_, h, w) = self.check_video(x)?;
        let h = match self.tiling {
            Some(t) if h > t.tile || w > t.tile => self.tiled_encode(x, t)?,
            _ => self.encode_whole(x)?,
        };
        let z = self.config.z_dim;
        Ok(LatentDistribution { mean: h.narrow(1, 0, z)?, logvar: h.narrow(1, z, z)?.clamp(-30f32, 20f32)? })
    }

    fn encode_whole(&self, x: &Tensor) -> Result<Tensor> {
        let frames = x.dim(2)?;
        let mut cache = FeatureCache::default();
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < frames {
            let len = if start == 0 { 1 } else { ENCODE_CHUNK };
            cache.rewind();
            chunks.push(self.encoder.forward(&x.narrow(2, start, len)?, &mut cache)?);
            start += len;
        }
        self.quant_conv.forward(&Tensor::cat(&chunks, 2)?, None)
    }

    /// Decodes latents `[B, z, T, h, w]` (as the VAE produces them, before the pipeline's
    /// normalisation) into pixels `[B, 3, 1 + 4(T−1), 8h, 8w]` in [−1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut frames = Vec::new();
        self.decode_streaming(z, |chunk| {
            frames.push(chunk);
            Ok(())
        })?;
        Tensor::cat(&frames, 2)
    }

    /// Decodes latent frame by latent frame, handing each chunk of pixel frames
    /// (`[B, 3, 1 or 4, H, W]`, clamped to [−1, 1]) to `sink` as soon as it is ready:
    /// memory does not grow with the length of the video.
    pub fn decode_streaming(&self, z: &Tensor, mut sink: impl FnMut(Tensor) -> Result<()>) -> Result<()> {
        let dims = z.dims();
        if dims.len() != 5 || dims[1] != self.config.z_dim {
            candle_core::bail!("latents: expected [B, {}, T, h, w], got {dims:?}", self.config.z_dim);
        }
        let (h, w) = (dims[3], dims[4]);
        let r = self.config.spatial_ratio();
        if let Some(t) = self.tiling {
            if h * r > t.tile || w * r > t.tile {
                return sink(self.tiled_decode(z, t)?);
            }
        }
        self.decode_frames(z, |chunk| sink(chunk.clamp(-1f32, 1f32)?))
    }

    /// The decoder run latent frame by latent frame with its feature cache (no clamp, no tiling).
    fn decode_frames(&self, z: &Tensor, mut sink: impl FnMut(Tensor) -> Result<()>) -> Result<()> {
        let x = self.post_quant_conv.forward(z, None)?;
        let mut cache = FeatureCache::default();
        for i in 0..z.dim(2)? {
            cache.rewind();
            sink(self.decoder.forward(&x.i((.., .., i..i + 1))?, &mut cache)?)?;
        }
        Ok(())
    }

    /// Decodes whole (no tiling) without clamping: tiles are blended before clamping, as
    /// diffusers does, and training needs gradients where a clamp would cut them.
    pub fn decode_unclamped(&self, z: &Tensor) -> Result<Tensor> {
        let mut out = Vec::new();
        self.decode_frames(z, |chunk| {
            out.push(chunk);
            Ok(())
        })?;
        Tensor::cat(&out, 2)
    }

    /// Linear cross-fade of `b`'s first `extent` rows/columns (dim 3 or 4) from `a`'s last ones.
    fn blend(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> Result<Tensor> {
        let extent = extent.min(a.dim(dim)?).min(b.dim(dim)?);
        if extent == 0 {
            return Ok(b.clone());
        }
        let a_len = a.dim(dim)?;
        let weights: Vec<f32> = (0..extent).map(|i| i as f32 / extent as f32).collect();
        let mut shape = vec![1; 5];
        shape[dim] = extent;
        let wb = Tensor::from_vec(weights, shape, b.device())?;
        let wa = wb.affine(-1.0, 1.0)?;
        let head = (a.narrow(dim, a_len - extent, extent)?.broadcast_mul(&wa)? + b.narrow(dim, 0, extent)?.broadcast_mul(&wb)?)?;
        let rest = b.narrow(dim, extent, b.dim(dim)? - extent)?;
        Tensor::cat(&[head, rest], dim)
    }

    /// Blends each tile with its upper and left neighbours and keeps its top-left `stride`
    /// part. Like diffusers, neighbours are used as already blended (it blends in place).
    fn stitch(mut rows: Vec<Vec<Tensor>>, blend_h: usize, blend_w: usize, stride_h: usize, stride_w: usize, out_h: usize, out_w: usize) -> Result<Tensor> {
        let mut result_rows = Vec::new();
        for i in 0..rows.len() {
            let mut result_row = Vec::new();
            for j in 0..rows[i].len() {
                let mut tile = rows[i][j].clone();
                if i > 0 {
                    tile = Self::blend(&rows[i - 1][j], &tile, blend_h, 3)?;
                }
                if j > 0 {
                    tile = Self::blend(&rows[i][j - 1], &tile, blend_w, 4)?;
                }
                let th = tile.dim(3)?.min(stride_h);
                let tw = tile.dim(4)?.min(stride_w);
                result_row.push(tile.narrow(3, 0, th)?.narrow(4, 0, tw)?);
                rows[i][j] = tile;
            }
            result_rows.push(Tensor::cat(&result_row, 4)?);
        }
        let all = Tensor::cat(&result_rows, 3)?;
        all.narrow(3, 0, out_h.min(all.dim(3)?))?.narrow(4, 0, out_w.min(all.dim(4)?))
    }

    fn tiled_encode(&self, x: &Tensor, t: Tiling) -> Result<Tensor> {
        let (_, _, _, h, w) = x.dims5()?;
        let r = self.config.spatial_ratio();
        let (tile_l, stride_l) = (t.tile / r, t.stride / r);
        let mut rows = Vec::new();
        for i in (0..h).step_by(t.stride) {
            let mut row = Vec::new();
            for j in (0..w).step_by(t.stride) {
                let tile = x.narrow(3, i, t.tile.min(h - i))?.narrow(4, j, t.tile.min(w - j))?;
                row.push(self.encode_whole(&tile)?);
            }
            rows.push(row);
        }
        Self::stitch(rows, tile_l - stride_l, tile_l - stride_l, stride_l, stride_l, h / r, w / r)
    }

    fn tiled_decode(&self, z: &Tensor, t: Tiling) -> Result<Tensor> {
        let (_, _, _, h, w) = z.dims5()?;
        let r = self.config.spatial_ratio();
        let (tile_l, stride_l) = (t.tile / r, t.stride / r);
        let mut rows = Vec::new();
        for i in (0..h).step_by(stride_l) {
            let mut row = Vec::new();
            for j in (0..w).step_by(stride_l) {
                let tile = z.narrow(3, i, tile_l.min(h - i))?.narrow(4, j, tile_l.min(w - j))?;
                row.push(self.decode_unclamped(&tile)?);
            }
            rows.push(row);
        }
        let blend = t.tile - t.stride;
        Self::stitch(rows, blend, blend, t.stride, t.stride, h * r, w * r)?.clamp(-1f32, 1f32)
    }

    fn stats(&self, values: &[f64], device: &candle_core::Device) -> Result<Tensor> {
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        Tensor::from_vec(v, (1, values.len(), 1, 1, 1), device)
    }

    /// `(z − mean) / std` per channel: what the transformer is trained on.
    pub fn normalize_latents(&self, z: &Tensor) -> Result<Tensor> {
        if self.config.latents_mean.is_empty() {
            return Ok(z.clone());
        }
        let mean = self.stats(&self.config.latents_mean, z.device())?;
        let std = self.stats(&self.config.latents_std, z.device())?;
        z.broadcast_sub(&mean)?.broadcast_div(&std)
    }

    /// The inverse of [`Self::normalize_latents`].
    pub fn denormalize_latents(&self, z: &Tensor) -> Result<Tensor> {
        if self.config.latents_mean.is_empty() {
            return Ok(z.clone());
        }
        let mean = self.stats(&self.config.latents_mean, z.device())?;
        let std = self.stats(&self.config.latents_std, z.device())?;
        z.broadcast_mul(&std)?.broadcast_add(&mean)
    }
}

impl Module for AutoencoderKLWan {
    /// Encode (posterior mode) and decode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(x)?.mean)
    }
}
