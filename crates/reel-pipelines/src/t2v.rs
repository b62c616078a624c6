//! The text-to-video core.

use candle_core::{DType, Device, Result, Tensor};
use reel_media::Frame;
use reel_models::planner::LayoutPlanner;
use reel_models::text::tokenizer::TextTokenizer;
use reel_models::text::TextEncoder;
use reel_models::wan::{AutoencoderKLWan, WanInput, WanTransformer3DModel};
use reel_schedulers::{noise, Scheduler, SchedulerConfig};

use crate::layout::{sample_layout, Erosion, Layout, ObjectPath};

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

/// Layout guidance: each step's prediction of the clean latents, x̂₀ = x − σ·v, is moved a
/// share `weight · σ / sigma` of the way to `target` (all of `weight` at the pass's first
/// step, fading to nothing at σ 0), and the velocity given to the sampler is the one that
/// predicts the moved x̂₀.
struct Pull<'a> {
    target: &'a Tensor,
    weight: f64,
    /// σ of the pass's first step.
    sigma: f32,
}

impl Pull<'_> {
    fn apply(&self, velocity: &Tensor, latents: &Tensor, sigma: f32) -> Result<Tensor> {
        if sigma <= 0.0 {
            return Ok(velocity.clone());
        }
        let share = self.weight * f64::from(sigma / self.sigma);
        let x0 = (latents - (velocity * f64::from(sigma))?)?;
        // v' = (x − x̂₀')/σ with x̂₀' = x̂₀ + share·(target − x̂₀).
        velocity - ((self.target - x0)? * (share / f64::from(sigma)))?
    }
}

/// A planned layout as the denoiser uses it.
#[derive(Clone, Debug)]
pub struct LayoutLatents {
    /// The layout painted and encoded by the VAE, normalised: `[1, C, T, h, w]`.
    pub latents: Tensor,
    /// The latent cells of the first frame that the planned objects touch, and the cells
    /// next to those: `[1, 1, 1, h, w]`, 1 there and 0 elsewhere.
    pub first_objects: Tensor,
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
    /// The model's layout planner, if it has one (`planner/`).
    pub planner: Option<&'a LayoutPlanner>,
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
    /// Steps of a first pass that makes the first frame; the clip is then made from it, its
    /// first latent frame held clean at timestep 0 (first-frame conditioning, which a model
    /// learns with `train.first_frame_share`). 0: the whole clip in one pass.
    pub first_frame_steps: usize,
    /// With a layout planner: the noise level (σ, 0–1) the planned layout is noised to
    /// before denoising (SDEdit); lower keeps more of the layout. 0: no layout, from noise.
    pub layout_strength: f64,
    /// With a layout: make the clip once and keep its first latent frame, put the painted
    /// layout's latents back into it where the planned objects lie, and make the clip again
    /// from it held clean (first-frame conditioning).
    pub layout_first_frame: bool,
    /// With a layout: how far (0–1) each step's prediction of the clean latents is pulled
    /// toward the layout's, fading with σ ([`Pull`]). 0: not at all.
    pub layout_guidance: f64,
    /// With a layout: the pixels (0–8) the VAE wears off an object's edge by the last frame,
    /// made up by painting the objects wider from the VAE's second temporal chunk on
    /// ([`Erosion`]). 0: painted as planned.
    pub layout_erosion: f64,
    /// With a layout: how many times the painted layout goes through the VAE (encoded and
    /// decoded) before it is encoded for good, each object's coverage moved each time by what
    /// the round trip lost ([`Layout::refine`]). 0: painted as planned.
    pub layout_refine: usize,
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

    /// Denoises from seeded noise, or from the planned layout; returns latents as the VAE
    /// expects them (denormalised). `on_step(i, total)` is called after every step.
    pub fn denoise(&self, prompt: &str, s: &Settings, on_step: impl FnMut(usize, usize)) -> Result<Tensor> {
        let context = self.encode_text(prompt, s)?;
        let layout = self.plan_layout(prompt, s)?.map(|l| self.encode_layout(&l, s)).transpose()?;
        self.denoise_with(&context, layout.as_ref(), s, on_step)
    }

    /// A layout painted at the request's size (wider by `layout_erosion`, its outlines
    /// corrected by `layout_refine` round trips through the VAE) and encoded by the VAE, as
    /// [`Self::denoise_with`] starts from.
    pub fn encode_layout(&self, layout: &Layout, s: &Settings) -> Result<LayoutLatents> {
        let erosion = Erosion { pixels: s.layout_erosion as f32, from: self.vae.config().temporal_ratio() };
        let target = layout.coverages(s.width, s.height, s.frames, erosion);
        let covers = match s.layout_refine {
            0 => target,
            trips => {
                let mut covers = target.clone();
                for _ in 0..trips {
                    let pixels = layout.compose(&covers, s.width, s.height, s.frames, &Device::Cpu)?;
                    let decoded = self.vae.decode(&self.vae.encode(&pixels)?.mean)?;
                    layout.refine(&mut covers, &target, &decoded, s.frames, erosion, 1.0)?;
                }
                covers
            }
        };
        let pixels = layout.compose(&covers, s.width, s.height, s.frames, &Device::Cpu)?;
        let latents = self.vae.normalize_latents(&self.vae.encode(&pixels)?.mean)?;
        // The objects alone, white on black, in the first frame: the latent cells they
        // touch, and one cell around those (the decoder draws an edge from both sides).
        let cutout = Layout { background: [0.0; 3], objects: layout.objects.iter().map(|o| ObjectPath { rgb: [1.0; 3], ..o.clone() }).collect() };
        let r = self.vae.config().spatial_ratio();
        let cover = ((cutout.paint(s.width, s.height, 1, &Device::Cpu)?.narrow(1, 0, 1)?.squeeze(2)? + 1.0)? * 0.5)?; // [1, 1, H, W]
        let touched = cover.max_pool2d_with_stride(r, r)?.ge(0.05)?.to_dtype(DType::F32)?;
        let grown = touched.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 1)?;
        Ok(LayoutLatents { latents, first_objects: grown.unsqueeze(2)? })
    }

    /// The layout of a request (`layout_strength` above 0): the planner's plan of `prompt`,
    /// its start places drawn with the request's seed. `None` without `layout_strength`.
    pub fn plan_layout(&self, prompt: &str, s: &Settings) -> Result<Option<Layout>> {
        if s.layout_strength <= 0.0 {
            return Ok(None);
        }
        let Some(planner) = self.planner else {
            candle_core::bail!("layout_strength {}: this model has no layout planner (planner/); use layout_strength 0, or train one with `reel train planner MODEL`", s.layout_strength);
        };
        let ids = self.tokenizer.ids(prompt).map_err(candle_core::Error::wrap)?;
        let plan = planner.plan(&ids)?;
        Ok(Some(sample_layout(&plan, s.seed, s.height as f32 / s.width as f32)))
    }

    /// [`Self::denoise`] from a conditioning made by [`Self::encode_text`] and a layout made
    /// by [`Self::plan_layout`] and encoded by [`Self::encode_layout`]. With a layout, its
    /// latents are noised to the first step at or below σ `layout_strength` with the seed's
    /// noise, and denoised from there (pulled toward the layout by `layout_guidance`): in one
    /// pass, or with `layout_first_frame` in two: the first frame of the first, with the painted
    /// layout's latents put back where the planned objects lie, is held clean while the
    /// second makes the clip again. Otherwise from noise; with
    /// `first_frame_steps`, a first pass of that many steps makes the whole clip, and its first
    /// latent frame is kept: the second pass makes the clip again from the same noise with
    /// that frame held clean. `on_step` counts both passes.
    pub fn denoise_with(&self, context: &Tensor, layout: Option<&LayoutLatents>, s: &Settings, mut on_step: impl FnMut(usize, usize)) -> Result<Tensor> {
        let shape = self.latent_shape(s)?;
        let guided = s.guidance > 1.0;
        if context.dim(0)? != if guided { 2 } else { 1 } {
            candle_core::bail!("the text conditioning has {} rows; guidance {} needs {}", context.dim(0)?, s.guidance, if guided { 2 } else { 1 });
        }
        let noise = latent_noise(s.seed, &shape, &Device::Cpu)?;
        if let Some(painted) = layout {
            let z = &painted.latents;
            if z.dims() != shape {
                candle_core::bail!("layout latents {:?} do not fit the request's {:?}", z.dims(), shape);
            }
            let mut scheduler = self.schedule(s.steps)?;
            let sigmas = scheduler.sigmas();
            let begin = (0..s.steps).find(|&i| f64::from(sigmas[i]) <= s.layout_strength + 1e-6).unwrap_or(s.steps - 1);
            let sigma = f64::from(sigmas[begin]);
            scheduler.set_begin_index(begin).map_err(candle_core::Error::wrap)?;
            let start = ((z * (1.0 - sigma))? + (&noise * sigma)?)?;
            let total = s.steps - begin;
            let pull = (s.layout_guidance > 0.0).then_some(Pull { target: z, weight: s.layout_guidance, sigma: sigma as f32 });
            if !(s.layout_first_frame && shape[2] > 1) {
                let latents = self.sample(context, s, scheduler, &start, None, pull, |i| on_step(i, total))?;
                return self.vae.denormalize_latents(&latents);
            }
            self.check_first_frame("layout_first_frame", "false")?;
            // The clip from the layout, of which only the first latent frame is kept; the
            // painted layout put back into it where the objects lie; then the clip made
            // again from it held clean.
            let mut first_pass = self.schedule(s.steps)?;
            first_pass.set_begin_index(begin).map_err(candle_core::Error::wrap)?;
            let made = self.sample(context, s, first_pass, &start, None, None, |i| on_step(i, 2 * total))?.narrow(2, 0, 1)?;
            let objects = painted.first_objects.broadcast_as(made.shape())?;
            let first = (&made + ((z.narrow(2, 0, 1)? - &made)? * objects)?)?;
            let latents = self.sample(context, s, scheduler, &start, Some(&first), pull, |i| on_step(total + i, 2 * total))?;
            return self.vae.denormalize_latents(&latents);
        }
        if s.first_frame_steps > 0 {
            self.check_first_frame("first_frame_steps", "0")?;
        }
        // A one-latent-frame clip is its first frame: one pass.
        let first_pass = if shape[2] > 1 { s.first_frame_steps } else { 0 };
        let total = first_pass + s.steps;
        let latents = if first_pass > 0 {
            let first = self.sample(context, s, self.schedule(s.first_frame_steps)?, &noise, None, None, |i| on_step(i, total))?.narrow(2, 0, 1)?;
            self.sample(context, s, self.schedule(s.steps)?, &noise, Some(&first), None, |i| on_step(s.first_frame_steps + i, total))?
        } else {
            self.sample(context, s, self.schedule(s.steps)?, &noise, None, None, |i| on_step(i, total))?
        };
        self.vae.denormalize_latents(&latents)
    }

    /// An error naming `setting` (and its `off` value) unless the transformer can hold its
    /// first latent frame alone.
    fn check_first_frame(&self, setting: &str, off: &str) -> Result<()> {
        let pt = self.transformer.config().patch_size[0];
        if pt != 1 {
            candle_core::bail!("{setting}: this transformer patches {pt} latent frames together, so its first latent frame cannot be held alone; use {setting} {off}");
        }
        Ok(())
    }

    /// The model's sampler set for `steps` steps.
    fn schedule(&self, steps: usize) -> Result<Box<dyn Scheduler + Send>> {
        let mut scheduler = self.scheduler.clone().build().map_err(candle_core::Error::wrap)?;
        scheduler.set_timesteps(steps, None).map_err(candle_core::Error::wrap)?;
        Ok(scheduler)
    }

    /// One sampling pass with `scheduler` from its current step, starting at `start` (the
    /// latents at that step's σ); `first` (`[1, C, 1, h, w]`), when given, is held as the
    /// clean first latent frame at timestep 0; `pull`, when given, moves each step's
    /// prediction of the clean latents toward a target.
    #[allow(clippy::too_many_arguments)]
    fn sample(&self, context: &Tensor, s: &Settings, mut scheduler: Box<dyn Scheduler + Send>, start: &Tensor, first: Option<&Tensor>, pull: Option<Pull>, mut on_step: impl FnMut(usize)) -> Result<Tensor> {
        let device = Device::Cpu;
        let guided = s.guidance > 1.0;
        let batch = context.dim(0)?;
        let frames = start.dim(2)?;
        let hold = |x: Tensor| -> Result<Tensor> {
            match first {
                Some(f) => Tensor::cat(&[f, &x.narrow(2, 1, frames - 1)?], 2),
                None => Ok(x),
            }
        };
        let mut latents = hold(start.clone())?;
        let fps = Tensor::from_vec(vec![s.fps as f32; batch], batch, &device)?;
        let token_frames = frames / self.transformer.config().patch_size[0];
        let begin = scheduler.step_index();
        for (i, &t) in scheduler.timesteps()[begin..].to_vec().iter().enumerate() {
            let input = if guided { Tensor::cat(&[&latents, &latents], 0)? } else { latents.clone() };
            let timestep = match first {
                // One timestep per latent frame: 0 for the held first frame.
                Some(_) => {
                    let row: Vec<f32> = (0..token_frames).map(|f| if f == 0 { 0.0 } else { t }).collect();
                    Tensor::from_vec(row.repeat(batch), (batch, token_frames), &device)?
                }
                None => Tensor::from_vec(vec![t; batch], batch, &device)?,
            };
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
            let velocity = match &pull {
                Some(p) => p.apply(&velocity, &latents, scheduler.sigmas()[begin + i])?,
                None => velocity,
            };
            latents = hold(scheduler.step(&velocity, &latents).map_err(candle_core::Error::wrap)?)?;
            on_step(i + 1);
        }
        Ok(latents)
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

    /// Replaces every variable of `map` drawn at random (candle's CPU generator cannot be
    /// seeded) by seeded normal values of the same mean and spread, so that a test's tiny
    /// models are the same on every run.
    fn seeded(map: &VarMap, seed: u64) {
        let data = map.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for (k, name) in names.into_iter().enumerate() {
            let var = &data[name];
            let x = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mean = x.iter().sum::<f32>() / x.len() as f32;
            let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / x.len() as f32).sqrt();
            if std > 0.0 {
                let z = reel_schedulers::noise::gaussian(reel_schedulers::noise::key(seed, k as u64), 0, x.len());
                let values: Vec<f32> = z.iter().map(|z| mean + std * z).collect();
                var.set(&Tensor::from_vec(values, var.shape(), var.device()).unwrap()).unwrap();
            }
        }
    }

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
        let models = (
            WanTransformer3DModel::new(&t, vb.pp("t")).unwrap(),
            AutoencoderKLWan::new(&v, vb.pp("v")).unwrap(),
            ReelTextEncoder::new(&te, vb.pp("e")).unwrap(),
            tok,
        );
        seeded(&map, 0);
        models
    }

    /// The pipeline over `t` and the tiny VAE, encoder and tokenizer, with Euler at shift 3.
    fn components<'a>(t: &'a WanTransformer3DModel, v: &'a AutoencoderKLWan, e: &'a ReelTextEncoder, tok: &'a TextTokenizer) -> Components<'a> {
        Components {
            transformer: t, vae: v, text_encoder: e, tokenizer: tok,
            scheduler: SchedulerConfig::from_json(r#"{"_class_name":"FlowMatchEulerDiscreteScheduler","shift":3.0}"#).unwrap(),
            max_text_len: 8,
            planner: None,
        }
    }

    #[test]
    fn same_seed_same_video_and_sizes_are_checked() {
        let (t, v, e, tok) = tiny();
        let c = components(&t, &v, &e, &tok);
        let s = Settings { width: 16, height: 16, frames: 5, fps: 8.0, steps: 2, guidance: 3.0, first_frame_steps: 0, layout_strength: 0.0, layout_first_frame: false, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, seed: 3, negative_prompt: String::new() };
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
    fn a_first_frame_pass_makes_the_first_frame_and_the_clip_keeps_it() {
        let (t, v, e, tok) = tiny();
        let c = components(&t, &v, &e, &tok);
        let s = Settings { width: 16, height: 16, frames: 9, fps: 8.0, steps: 3, guidance: 3.0, first_frame_steps: 0, layout_strength: 0.0, layout_first_frame: false, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, seed: 5, negative_prompt: String::new() };
        let one_pass = c.denoise("a red circle", &Settings { steps: 2, ..s.clone() }, |_, _| {}).unwrap();
        let mut seen = Vec::new();
        let two = Settings { first_frame_steps: 2, ..s.clone() };
        let two_pass = c.denoise("a red circle", &two, |i, n| seen.push((i, n))).unwrap();
        assert_eq!(seen, (1..=5).map(|i| (i, 5)).collect::<Vec<_>>(), "progress counts both passes");
        let frame = |x: &Tensor, f: usize| x.narrow(2, f, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(frame(&two_pass, 0), frame(&one_pass, 0), "the first pass's first frame is kept as it was made");
        let plain = c.denoise("a red circle", &s, |_, _| {}).unwrap();
        assert_ne!(frame(&two_pass, 1), frame(&plain, 1), "the rest is made again from it");
        let again = c.denoise("a red circle", &two, |_, _| {}).unwrap();
        assert_eq!(frame(&again, 2), frame(&two_pass, 2), "the same seed gives the same clip");
        // A one-frame clip is its first frame: one pass.
        let mut steps = 0;
        c.denoise("a red circle", &Settings { frames: 1, ..two }, |_, n| steps = n).unwrap();
        assert_eq!(steps, 3);
    }

    #[test]
    fn a_first_frame_pass_needs_one_latent_frame_per_token() {
        let (_, v, e, tok) = tiny();
        let map = VarMap::new();
        let cfg = WanTransformerConfig {
            patch_size: [2, 2, 2], num_attention_heads: 2, attention_head_dim: 8, in_channels: 4, out_channels: Some(4), text_dim: 16,
            freq_dim: 16, ffn_dim: 32, num_layers: 1, ..Default::default()
        };
        let t = WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
        let c = components(&t, &v, &e, &tok);
        let s = Settings { width: 16, height: 16, frames: 5, fps: 8.0, steps: 1, guidance: 1.0, first_frame_steps: 1, layout_strength: 0.0, layout_first_frame: false, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, seed: 0, negative_prompt: String::new() };
        let err = c.denoise("a red circle", &s, |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("first_frame_steps 0"), "{err}");
        c.denoise("a red circle", &Settings { first_frame_steps: 0, ..s }, |_, _| {}).unwrap();
    }

    #[test]
    fn a_layout_starts_denoising_part_way_from_the_painted_plan() {
        use reel_models::planner::{LayoutPlannerConfig, LayoutPlanner};
        let (t, v, e, tok) = tiny();
        let map = VarMap::new();
        let cfg = LayoutPlannerConfig { vocab_size: 5, hidden_size: 4, separator_id: None, context_ids: vec![], ignore_ids: vec![0], max_objects: 2, silhouette_size: 0 };
        let planner = LayoutPlanner::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
        seeded(&map, 1);
        let mut c = components(&t, &v, &e, &tok);
        let s = Settings { width: 16, height: 16, frames: 5, fps: 8.0, steps: 6, guidance: 3.0, first_frame_steps: 2, layout_strength: 0.5, layout_first_frame: false, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, seed: 1, negative_prompt: String::new() };
        let err = c.plan_layout("a red circle", &s).unwrap_err().to_string();
        assert!(err.contains("no layout planner") && err.contains("reel train planner"), "{err}");
        assert!(c.plan_layout("a red circle", &Settings { layout_strength: 0.0, ..s.clone() }).unwrap().is_none());
        c.planner = Some(&planner);
        let layout = c.plan_layout("a red circle", &s).unwrap().expect("a layout");
        assert_eq!(layout.objects.len(), 1);
        let mut seen = Vec::new();
        let from_layout = c.denoise("a red circle", &s, |i, n| seen.push((i, n))).unwrap();
        let total = seen.last().unwrap().1;
        assert!(total < 6 && total > 0, "steps from σ 0.5 on, in one pass: {seen:?}");
        assert_eq!(seen, (1..=total).map(|i| (i, total)).collect::<Vec<_>>());
        assert_eq!(from_layout.flatten_all().unwrap().to_vec1::<f32>().unwrap(), c.denoise("a red circle", &s, |_, _| {}).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), "the same seed, the same clip");
        // Less strength keeps more of the painted layout.
        let painted = v.encode(&layout.paint(16, 16, 5, &Device::Cpu).unwrap()).unwrap().mean;
        let distance = |x: &Tensor| (x - &painted).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        let light = c.denoise("a red circle", &Settings { layout_strength: 0.2, ..s.clone() }, |_, _| {}).unwrap();
        let none = c.denoise("a red circle", &Settings { layout_strength: 0.0, ..s.clone() }, |_, _| {}).unwrap();
        assert!(distance(&light) < distance(&from_layout) && distance(&from_layout) < distance(&none), "{} {} {}", distance(&light), distance(&from_layout), distance(&none));
    }

    #[test]
    fn layout_guidance_predicts_the_moved_clean_latents() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[1f32, -2.0, 0.5], &dev).unwrap();
        let (x, v) = (Tensor::new(&[0.3f32, 0.1, -0.4], &dev).unwrap(), Tensor::new(&[0.2f32, -1.0, 2.0], &dev).unwrap());
        let x0 = |v: &Tensor, sigma: f64| (&x - (v * sigma).unwrap()).unwrap().to_vec1::<f32>().unwrap();
        let close = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5);
        let pull = Pull { target: &target, weight: 1.0, sigma: 0.5 };
        // All the way at the pass's first σ, half way at half of it, not at all at 0.
        assert!(close(x0(&pull.apply(&v, &x, 0.5).unwrap(), 0.5), target.to_vec1().unwrap()));
        let half: Vec<f32> = x0(&v, 0.25).iter().zip(target.to_vec1::<f32>().unwrap()).map(|(a, t)| a + 0.5 * (t - a)).collect();
        assert!(close(x0(&pull.apply(&v, &x, 0.25).unwrap(), 0.25), half));
        assert!(close(pull.apply(&v, &x, 0.0).unwrap().to_vec1().unwrap(), v.to_vec1().unwrap()));
    }

    #[test]
    fn a_layout_first_frame_keeps_the_painted_objects_and_guidance_pulls_toward_the_layout() {
        let (t, v, e, tok) = tiny();
        let c = components(&t, &v, &e, &tok);
        let s = Settings { width: 64, height: 64, frames: 9, fps: 8.0, steps: 6, guidance: 3.0, first_frame_steps: 0, layout_strength: 0.5, layout_first_frame: true, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, seed: 2, negative_prompt: String::new() };
        // Radius 5 px at (19, 19) px, moving right.
        let object = crate::layout::ObjectPath { rgb: [0.9, 0.1, 0.1], start: [0.3, 0.3], end: [0.6, 0.3], radius: [0.08, 0.08], silhouette: None };
        let layout = Layout { background: [0.2, 0.2, 0.2], objects: vec![object] };
        let painted = c.encode_layout(&layout, &s).unwrap();
        let context = c.encode_text("a red circle", &s).unwrap();
        let mut seen = Vec::new();
        let two = c.denoise_with(&context, Some(&painted), &s, |i, n| seen.push((i, n))).unwrap();
        let total = seen.last().unwrap().1;
        assert_eq!(seen, (1..=total).map(|i| (i, total)).collect::<Vec<_>>(), "both passes counted");
        assert_eq!(total % 2, 0);
        // The mask: the latent cells around the object's start, 1 or 0.
        let mask: Vec<f32> = painted.first_objects.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(painted.first_objects.dims(), &[1, 1, 1, 8, 8]);
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0) && mask.contains(&1.0) && mask.contains(&0.0), "{mask:?}");
        // The disc spans pixels 14-24 of 64 on both axes: cells 1-3, and one cell around
        // those, so within cells 0-4; the cells the disc touches and their neighbours are in.
        for (k, &m) in mask.iter().enumerate() {
            let (row, col) = (k / 8, k % 8);
            if row > 4 || col > 4 {
                assert_eq!(m, 0.0, "cell ({row}, {col}): {mask:?}");
            }
            if (1..=3).contains(&row) && (1..=3).contains(&col) {
                assert_eq!(m, 1.0, "cell ({row}, {col}): {mask:?}");
            }
        }
        // Erosion paints later frames wider: the latents of the frames up to the
        // VAE's first chunk (its encoder is causal) and the first-frame mask are as before.
        let faded = c.encode_layout(&layout, &Settings { layout_erosion: 2.0, ..s.clone() }).unwrap();
        let gap = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let rt = c.vae.config().temporal_ratio();
        assert_eq!(painted.latents.dim(2).unwrap(), 1 + 8 / rt);
        assert!(gap(&faded.latents.narrow(2, 0, 2).unwrap(), &painted.latents.narrow(2, 0, 2).unwrap()) < 1e-6);
        assert!(gap(&faded.latents.narrow(2, 2, 1).unwrap(), &painted.latents.narrow(2, 2, 1).unwrap()) > 1e-3);
        assert_eq!(gap(&faded.first_objects, &painted.first_objects), 0.0);
        // Refinement encodes the painting with each outline moved once by what the VAE's round
        // trip of the plain painting lost; the first-frame mask is the planned one.
        let refined = c.encode_layout(&layout, &Settings { layout_refine: 1, ..s.clone() }).unwrap();
        let target = layout.coverages(64, 64, 9, Erosion { pixels: 0.0, from: rt });
        let mut covers = target.clone();
        let round_trip = c.vae.decode(&c.vae.encode(&layout.compose(&target, 64, 64, 9, &Device::Cpu).unwrap()).unwrap().mean).unwrap();
        layout.refine(&mut covers, &target, &round_trip, 9, Erosion { pixels: 0.0, from: rt }, 1.0).unwrap();
        assert_ne!(covers, target);
        let expected = c.vae.normalize_latents(&c.vae.encode(&layout.compose(&covers, 64, 64, 9, &Device::Cpu).unwrap()).unwrap().mean).unwrap();
        assert!(gap(&refined.latents, &expected) < 1e-6);
        assert!(gap(&refined.latents, &painted.latents) > 1e-4);
        assert_eq!(gap(&refined.first_objects, &painted.first_objects), 0.0);
        // Inside the mask the clip's first latent frame is the painted one, held clean;
        // outside it the first pass's.
        let shape = c.latent_shape(&s).unwrap();
        let noise = latent_noise(s.seed, &shape, &Device::Cpu).unwrap();
        let mut alone = c.schedule(s.steps).unwrap();
        let begin = s.steps - total / 2;
        let sigma = f64::from(alone.sigmas()[begin]);
        alone.set_begin_index(begin).unwrap();
        let start = ((&painted.latents * (1.0 - sigma)).unwrap() + (&noise * sigma).unwrap()).unwrap();
        let made = c.sample(&context, &s, alone, &start, None, None, |_| {}).unwrap().narrow(2, 0, 1).unwrap();
        let m = painted.first_objects.broadcast_as(made.shape()).unwrap();
        let expected = (m.mul(&painted.latents.narrow(2, 0, 1).unwrap()).unwrap() + m.affine(-1.0, 1.0).unwrap().mul(&made).unwrap()).unwrap();
        let first = |x: &Tensor| c.vae.normalize_latents(x).unwrap().narrow(2, 0, 1).unwrap();
        assert!(gap(&first(&two), &expected) < 1e-4, "{}", gap(&first(&two), &expected));
        let one = c.denoise_with(&context, Some(&painted), &Settings { layout_first_frame: false, ..s.clone() }, |_, _| {}).unwrap();
        assert!(gap(&first(&one), &expected) > 1e-3, "one pass does not hold it");
        // Guidance brings the clip nearer the painted layout, more with more weight.
        let distance = |x: &Tensor| (c.vae.normalize_latents(x).unwrap() - &painted.latents).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        let plain = Settings { layout_first_frame: false, ..s.clone() };
        let pulled = |g: f64| distance(&c.denoise_with(&context, Some(&painted), &Settings { layout_guidance: g, ..plain.clone() }, |_, _| {}).unwrap());
        let (d0, d3, d9) = (pulled(0.0), pulled(0.3), pulled(0.9));
        assert!(d9 < d3 && d3 < d0, "{d0} {d3} {d9}");
        // A transformer that patches latent frames together cannot hold the first one.
        let map2 = VarMap::new();
        let cfg2 = WanTransformerConfig {
            patch_size: [2, 2, 2], num_attention_heads: 2, attention_head_dim: 8, in_channels: 4, out_channels: Some(4), text_dim: 16,
            freq_dim: 16, ffn_dim: 32, num_layers: 1, ..Default::default()
        };
        let t2 = WanTransformer3DModel::new(&cfg2, VarBuilder::from_varmap(&map2, DType::F32, &Device::Cpu)).unwrap();
        let c2 = Components { transformer: &t2, ..components(&t, &v, &e, &tok) };
        let s2 = Settings { frames: 5, guidance: 1.0, ..s.clone() };
        let painted2 = c.encode_layout(&layout, &s2).unwrap();
        let ctx2 = c2.encode_text("a red circle", &s2).unwrap();
        let err = c2.denoise_with(&ctx2, Some(&painted2), &s2, |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("layout_first_frame false"), "{err}");
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
