//! The text-to-video core.

use candle_core::{DType, Device, Result, Tensor};
use reel_media::Frame;
use reel_models::text::tokenizer::TextTokenizer;
use reel_models::text::TextEncoder;
use reel_models::wan::{AutoencoderKLWan, WanInput, WanTransformer3DModel};
use reel_schedulers::{noise, SchedulerConfig};

/// Noise stream of the initial latents (see [`latent_noise`]).
pub const LATENT_NOISE_STREAM: u64 = 0x6c61_7465_6e74;

/// Encodes `texts` to `[B, max_len, hidden]`, padding positions set to zero (as the Wan
/// pipelines do), so that padding carries nothing the model could come to rely on.
pub fn encode_prompts(encoder: &dyn TextEncoder, tokenizer: &TextTokenizer, texts: &[&str], max_len: usize, device: &Device) -> Result<Tensor> {
    let (ids, mask) = tokenizer.batch(texts, max_len, device).map_err(candle_core::Error::wrap)?;
    let hidden = encoder.encode(&ids, &mask)?;
    hidden.broadcast_mul(&mask.to_dtype(hidden.dtype())?.unsqueeze(2)?)
}

/// Seeded standard-normal latents of `shape`: the same seed gives the same numbers on any
/// thread count.
pub fn latent_noise(seed: u64, shape: &[usize], device: &Device) -> Result<Tensor> {
    let count = shape.iter().product();
    Tensor::from_vec(noise::gaussian(noise::key(seed, LATENT_NOISE_STREAM), 0, count), shape, device)
}

/// Decoded pixels `[B, 3, F, H, W]` in [−1, 1] → frames of example `b`.
pub fn frames_from_pixels(pixels: &Tensor, b: usize) -> Result<Vec<Frame>> {
    let x = pixels.get(b)?.to_dtype(DType::F32)?; // [3, F, H, W]
    let (_, f, h, w) = x.dims4()?;
    let x = ((x.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?.round()?.permute((1, 2, 3, 0))?.contiguous()?; // [F, H, W, 3]
    let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    values
        .chunks_exact(h * w * 3)
        .take(f)
        .map(|c| Frame::from_rgb(w as u32, h as u32, c.iter().map(|&v| v as u8).collect()).map_err(candle_core::Error::wrap))
        .collect()
}

/// The models of a text-to-video pipeline.
pub struct Components<'a> {
    pub transformer: &'a WanTransformer3DModel,
    pub vae: &'a AutoencoderKLWan,
    pub text_encoder: &'a dyn TextEncoder,
    pub tokenizer: &'a TextTokenizer,
    pub scheduler: SchedulerConfig,
    /// Tokens per prompt (the length the model was trained with).
    pub max_text_len: usize,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub fps: f64,
    pub steps: usize,
    /// Classifier-free guidance scale; 1 or less runs the conditional branch only.
    pub guidance: f64,
    pub seed: u64,
    pub negative_prompt: String,
}

impl Components<'_> {
    /// `[1, C, T, h, w]` for `settings`, or an error naming the nearest sizes the models can make.
    pub fn latent_shape(&self, s: &Settings) -> Result<[usize; 5]> {
        let vae = self.vae.config();
        let (rt, rs) = (vae.temporal_ratio(), vae.spatial_ratio());
        let [pt, ph, pw] = self.transformer.config().patch_size;
        if s.frames == 0 || (s.frames - 1) % rt != 0 || ((s.frames - 1) / rt + 1) % pt != 0 {
            candle_core::bail!("{} frames: this model makes 1 + {rt}·k frames", s.frames);
        }
        let (sh, sw) = (rs * ph, rs * pw);
        if s.height % sh != 0 || s.width % sw != 0 || s.height == 0 || s.width == 0 {
            candle_core::bail!("{}x{}: width must be a multiple of {sw} and height of {sh}", s.width, s.height);
        }
        Ok([1, vae.z_dim, (s.frames - 1) / rt + 1, s.height / rs, s.width / rs])
    }

    /// The text conditioning of a request: `[1, L, d]`, or `[2, L, d]` (prompt, negative
    /// prompt) when `settings` asks for classifier-free guidance.
    pub fn encode_text(&self, prompt: &str, s: &Settings) -> Result<Tensor> {
        let texts: Vec<&str> = if s.guidance > 1.0 { vec![prompt, &s.negative_prompt] } else { vec![prompt] };
        encode_prompts(self.text_encoder, self.tokenizer, &texts, self.max_text_len, &Device::Cpu)
    }

    /// Denoises from seeded noise; returns latents as the VAE expects them (denormalised).
    /// `on_step(i, total)` is called after every step.
    pub fn denoise(&self, prompt: &str, s: &Settings, on_step: impl FnMut(usize, usize)) -> Result<Tensor> {
        let context = self.encode_text(prompt, s)?;
        self.denoise_with(&context, s, on_step)
    }

    /// [`Self::denoise`] from a conditioning made by [`Self::encode_text`].
    pub fn denoise_with(&self, context: &Tensor, s: &Settings, mut on_step: impl FnMut(usize, usize)) -> Result<Tensor> {
        let device = Device::Cpu;
        let shape = self.latent_shape(s)?;
        let guided = s.guidance > 1.0;
        if context.dim(0)? != if guided { 2 } else { 1 } {
            candle_core::bail!("the text conditioning has {} rows; guidance {} needs {}", context.dim(0)?, s.guidance, if guided { 2 } else { 1 });
        }
        let batch = context.dim(0)?;
        let mut scheduler = self.scheduler.clone().build().map_err(candle_core::Error::wrap)?;
        scheduler.set_timesteps(s.steps, None).map_err(candle_core::Error::wrap)?;
        let mut latents = latent_noise(s.seed, &shape, &device)?;
        let fps = Tensor::from_vec(vec![s.fps as f32; batch], batch, &device)?;
        let timesteps = scheduler.timesteps().to_vec();
        for (i, &t) in timesteps.iter().enumerate() {
            let input = if guided { Tensor::cat(&[&latents, &latents], 0)? } else { latents.clone() };
            let timestep = Tensor::from_vec(vec![t; batch], batch, &device)?;
            let wan = WanInput {
                hidden_states: &input,
                timestep: &timestep,
                encoder_hidden_states: context,
                fps: self.transformer.config().fps_conditioning.then_some(&fps),
                frame_offset: 0,
            };
            let out = self.transformer.forward(&wan)?;
            let velocity = if guided {
                let (cond, uncond) = (out.get(0)?.unsqueeze(0)?, out.get(1)?.unsqueeze(0)?);
                (&uncond + ((cond - &uncond)? * s.guidance)?)?
            } else {
                out
            };
            latents = scheduler.step(&velocity, &latents).map_err(candle_core::Error::wrap)?;
            on_step(i + 1, timesteps.len());
        }
        self.vae.denormalize_latents(&latents)
    }

    /// Decodes latents, handing frames to `sink` as they are ready.
    pub fn decode(&self, latents: &Tensor, mut sink: impl FnMut(Frame) -> Result<()>) -> Result<()> {
        self.vae.decode_streaming(latents, |chunk| {
            for frame in frames_from_pixels(&chunk, 0)? {
                sink(frame)?;
            }
            Ok(())
        })
    }

    /// Denoise and decode into frames.
    pub fn generate(&self, prompt: &str, s: &Settings, on_step: impl FnMut(usize, usize)) -> Result<Vec<Frame>> {
        let latents = self.denoise(prompt, s, on_step)?;
        let mut frames = Vec::with_capacity(s.frames);
        self.decode(&latents, |f| {
            frames.push(f);
            Ok(())
        })?;
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{VarBuilder, VarMap};
    use reel_models::text::reel_text::{ReelTextConfig, ReelTextEncoder};
    use reel_models::wan::{WanTransformerConfig, WanVaeConfig};

    fn tiny() -> (WanTransformer3DModel, AutoencoderKLWan, ReelTextEncoder, TextTokenizer) {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let t = WanTransformerConfig {
            num_attention_heads: 2, attention_head_dim: 8, in_channels: 4, out_channels: Some(4), text_dim: 16, freq_dim: 16,
            ffn_dim: 32, num_layers: 1, fps_conditioning: true, ..Default::default()
        };
        let v = WanVaeConfig { base_dim: 4, z_dim: 4, dim_mult: vec![1, 2, 2, 2], num_res_blocks: 1, latents_mean: vec![], latents_std: vec![], ..Default::default() };
        let te = ReelTextConfig { vocab_size: 16, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32, max_position_embeddings: 8, ..Default::default() };
        let tok = TextTokenizer::word_level(["a", "red", "circle"]).unwrap();
        (
            WanTransformer3DModel::new(&t, vb.pp("t")).unwrap(),
            AutoencoderKLWan::new(&v, vb.pp("v")).unwrap(),
            ReelTextEncoder::new(&te, vb.pp("e")).unwrap(),
            tok,
        )
    }

    #[test]
    fn same_seed_same_video_and_sizes_are_checked() {
        let (t, v, e, tok) = tiny();
        let c = Components {
            transformer: &t, vae: &v, text_encoder: &e, tokenizer: &tok,
            scheduler: SchedulerConfig::from_json(r#"{"_class_name":"FlowMatchEulerDiscreteScheduler","shift":3.0}"#).unwrap(),
            max_text_len: 8,
        };
        let s = Settings { width: 16, height: 16, frames: 5, fps: 8.0, steps: 2, guidance: 3.0, seed: 3, negative_prompt: String::new() };
        let a = c.generate("a red circle", &s, |_, _| {}).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!((a[0].width(), a[0].height()), (16, 16));
        let b = c.generate("a red circle", &s, |_, _| {}).unwrap();
        assert_eq!(a, b);
        let other = c.generate("a red circle", &Settings { seed: 4, ..s.clone() }, |_, _| {}).unwrap();
        assert_ne!(a, other);
        let err = c.latent_shape(&Settings { frames: 6, ..s.clone() }).unwrap_err().to_string();
        assert!(err.contains("1 + 4·k"), "{err}");
        let err = c.latent_shape(&Settings { width: 20, ..s }).unwrap_err().to_string();
        assert!(err.contains("multiple of 16"), "{err}");
    }

    #[test]
    fn padding_positions_encode_to_zero() {
        let (_, _, e, tok) = tiny();
        let x = encode_prompts(&e, &tok, &["a red circle", "a"], 6, &Device::Cpu).unwrap();
        let pad: f32 = x.get(1).unwrap().narrow(0, 1, 5).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        let word: f32 = x.get(1).unwrap().narrow(0, 0, 1).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(pad, 0.0);
        assert!(word > 0.0);
    }
}
