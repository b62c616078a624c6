//! `reel bench transformer|vae`: time forward passes on a model folder or on
//! random weights from a config, with FLOP counts and peak memory.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use reel_models::wan::{AutoencoderKLWan, WanInput, WanTransformer3DModel, WanTransformerConfig, WanVaeConfig};
use serde_json::json;

use crate::cli::ModelBenchArgs;
use reel_train::metrics::peak_rss;

fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| (b as f64 / (1 << 20) as f64 * 10.0).round() / 10.0)
}

fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading '{}'", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing '{}'", path.display()))
}

/// (mean, best) seconds, rounded to 0.1 ms.
fn summary(times: &[f64]) -> (f64, f64) {
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    ((mean * 1e4).round() / 1e4, best)
}

/// Times `run` (one warm-up unless disabled), returning per-run seconds.
fn time_runs(args: &ModelBenchArgs, mut run: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    if !args.no_warmup {
        run()?;
    }
    (0..args.iters.max(1))
        .map(|_| {
            let t = Instant::now();
            run()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

fn latent_dims(args: &ModelBenchArgs) -> Result<(usize, usize, usize)> {
    if args.frames == 0 || (args.frames - 1) % 4 != 0 || args.height % 8 != 0 || args.width % 8 != 0 {
        anyhow::bail!("--frames must be 4k+1 and --height/--width multiples of 8, got {} frames at {}x{}", args.frames, args.width, args.height);
    }
    Ok((1 + (args.frames - 1) / 4, args.height / 8, args.width / 8))
}

/// Multiply-adds ×2 of one transformer forward (matmuls and attention; norms and embeddings ignored).
fn transformer_flops(c: &WanTransformerConfig, batch: usize, tokens: usize, text: usize) -> f64 {
    let (d, f, s, l) = (c.inner_dim() as f64, c.ffn_dim as f64, tokens as f64, text as f64);
    let block = 2.0 * (4.0 * s * d * d + 2.0 * s * s * d) // self-attention projections and scores
        + 2.0 * (2.0 * s * d * d + 2.0 * l * d * d + 2.0 * s * l * d) // cross-attention
        + 2.0 * 2.0 * s * d * f; // feed-forward
    batch as f64 * c.num_layers as f64 * block
}

pub fn transformer(args: &ModelBenchArgs, text_len: usize) -> Result<()> {
    let device = Device::Cpu;
    let rss_start = peak_rss();
    let load_started = Instant::now();
    let model = match (&args.dir, &args.config) {
        (Some(dir), _) => reel_models::load_wan_transformer(dir, DType::F32, &device)?,
        (None, Some(cfg)) => {
            let cfg: WanTransformerConfig = read_config(cfg)?;
            cfg.validate().map_err(anyhow::Error::msg)?;
            let map = VarMap::new();
            WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &device))?
        }
        (None, None) => anyhow::bail!("give a model folder or --config CONFIG.json"),
    };
    let load_seconds = load_started.elapsed().as_secs_f64();
    let c = model.config().clone();
    let (lf, lh, lw) = latent_dims(args)?;
    let b = args.batch;
    let hidden = Tensor::randn(0f32, 1.0, (b, c.in_channels, lf, lh, lw), &device)?;
    let text = Tensor::randn(0f32, 1.0, (b, text_len, c.text_dim), &device)?;
    let timestep = Tensor::full(500f32, b, &device)?;
    let fps = Tensor::full(8f32, b, &device)?;
    let input = WanInput { hidden_states: &hidden, timestep: &timestep, encoder_hidden_states: &text, fps: c.fps_conditioning.then_some(&fps), frame_offset: 0 };
    let rss_loaded = peak_rss();
    let times = time_runs(args, || Ok(model.forward(&input).map(|_| ())?))?;
    let [pt, ph, pw] = c.patch_size;
    let tokens = (lf / pt) * (lh / ph) * (lw / pw);
    let (mean, best) = summary(&times);
    let flops = transformer_flops(&c, b, tokens, text_len);
    let report = json!({
        "component": "transformer",
        "implementation": "reel",
        "threads": candle_core::utils::get_num_threads(),
        "batch": b, "frames": args.frames, "height": args.height, "width": args.width,
        "latent": [c.in_channels, lf, lh, lw], "tokens": tokens, "text_len": text_len,
        "layers": c.num_layers, "dim": c.inner_dim(), "heads": c.num_attention_heads,
        "load_seconds": (load_seconds * 1000.0).round() / 1000.0,
        "seconds_mean": mean, "seconds_best": (best * 1e4).round() / 1e4,
        "gflops": (flops / 1e9 * 10.0).round() / 10.0,
        "gflop_per_second": (flops / best / 1e9 * 10.0).round() / 10.0,
        "peak_rss_mib_start": mib(rss_start), "peak_rss_mib_loaded": mib(rss_loaded), "peak_rss_mib": mib(peak_rss()),
    });
    println!("{report}");
    Ok(())
}

pub fn vae(args: &ModelBenchArgs, encode: bool) -> Result<()> {
    let device = Device::Cpu;
    let rss_start = peak_rss();
    let vae = match (&args.dir, &args.config) {
        (Some(dir), _) => reel_models::load_wan_vae(dir, DType::F32, &device)?,
        (None, Some(cfg)) => {
            let cfg: WanVaeConfig = read_config(cfg)?;
            cfg.validate().map_err(anyhow::Error::msg)?;
            let map = VarMap::new();
            AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &device))?
        }
        (None, None) => anyhow::bail!("give a model folder or --config CONFIG.json"),
    };
    let c = vae.config().clone();
    let (lf, lh, lw) = latent_dims(args)?;
    let b = args.batch;
    let rss_loaded = peak_rss();
    let times = if encode {
        let x = Tensor::rand(-1f32, 1.0, (b, c.in_channels, args.frames, args.height, args.width), &device)?;
        time_runs(args, || Ok(vae.encode(&x).map(|_| ())?))?
    } else {
        let z = Tensor::randn(0f32, 1.0, (b, c.z_dim, lf, lh, lw), &device)?;
        time_runs(args, || Ok(vae.decode_streaming(&z, |_| Ok(()))?))?
    };
    let (mean, best) = summary(&times);
    let report = json!({
        "component": if encode { "vae-encode" } else { "vae-decode" },
        "implementation": "reel",
        "threads": candle_core::utils::get_num_threads(),
        "batch": b, "frames": args.frames, "height": args.height, "width": args.width, "latent": [c.z_dim, lf, lh, lw],
        "seconds_mean": mean, "seconds_best": (best * 1e4).round() / 1e4,
        "frames_per_second": ((b * args.frames) as f64 / best * 10.0).round() / 10.0,
        "peak_rss_mib_start": mib(rss_start), "peak_rss_mib_loaded": mib(rss_loaded), "peak_rss_mib": mib(peak_rss()),
    });
    println!("{report}");
    Ok(())
}
