//! What each subcommand does.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use reel_data::{ShapesWorld, SynthOptions, WorldConfig};
use reel_media::{EncodeOptions, Frame, VideoFormat, VideoSpec, VideoWriter};
use reel_train::metrics::peak_rss;
use serde_json::json;

use crate::cli::{BenchCommand, Cli, Command, ComponentArg, DataCommand, ModelCommand, VideoCommand, WorldArgs};
use crate::eval;

pub fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Generate(args) => crate::generate::generate(*args, cli.verbose > 0, quiet),
        Command::Video(VideoCommand::Info { file, json }) => video_info(&file, json),
        Command::Video(VideoCommand::Sheet { file, out, columns, every }) => video_sheet(&file, &out, columns, every),
        Command::Data(DataCommand::Synth { out, count, world, format, quality, threads }) => {
            let options = SynthOptions {
                world: world_config(&world),
                count,
                format: format.into(),
                encode: EncodeOptions { quality, ..EncodeOptions::default() },
                threads: threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            };
            data_synth(&out, &options, quiet)
        }
        Command::Data(DataCommand::Samples { count, start, world }) => data_samples(&world, start, count),
        Command::Model(ModelCommand::Info { dir, json }) => model_info(&model_path(&dir)?, json),
        Command::Model(ModelCommand::Run { dir, component, inputs, output }) => model_run(&model_path(&dir)?, component, &inputs, &output),
        Command::Train(args) => crate::train::train(args, quiet),
        Command::Data(DataCommand::Cache { input, model, out, width, height, frames, fps, text, max_text_len, shard_size, count, scoring_share, seed }) => {
            crate::train::cache(input, model, &out, [width, height, frames], fps, text, max_text_len, shard_size, count, scoring_share, seed, quiet)
        }
        Command::Eval(command) => eval::run(command, quiet),
        Command::Bench(BenchCommand::Transformer { model, text_len }) => crate::bench::transformer(&model, text_len),
        Command::Bench(BenchCommand::Vae { model, encode }) => crate::bench::vae(&model, encode),
        Command::Bench(BenchCommand::Video { out, format, frames, width, height, fps, keep }) => {
            bench_video(&out, format.map(Into::into), frames, VideoSpec::new(width, height, fps)?, keep)
        }
    }
}

pub(crate) fn world_config(w: &WorldArgs) -> WorldConfig {
    WorldConfig { seed: w.seed, width: w.width, height: w.height, frames: w.frames, fps: w.fps, split: w.split.into(), scenes: w.scenes.into() }
}

pub(crate) fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn video_info(file: &Path, as_json: bool) -> Result<()> {
    let info = reel_media::probe(file)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("path:      {}", info.path.display());
        println!("container: {}", info.container);
        println!("codec:     {}", info.codec);
        println!("size:      {}x{}", info.width, info.height);
        println!("fps:       {} ({:.3})", info.fps, info.fps.as_f64());
        println!("frames:    {}", info.frames);
        println!("duration:  {:.3} s", info.duration_seconds);
    }
    Ok(())
}

fn video_sheet(file: &Path, out: &Path, columns: usize, every: u64) -> Result<()> {
    let reader = reel_media::VideoReader::open(file)?;
    let frames = reader.step_by(every as usize).collect::<reel_media::Result<Vec<Frame>>>()?;
    let sheet = reel_media::contact_sheet(&frames, columns, 2).context("the video has no frames")?;
    reel_media::write_png(out, &sheet).with_context(|| format!("writing '{}'", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// `shapes-v1` names the bundled model, unless a folder of that name is here.
fn model_path(dir: &Path) -> Result<std::path::PathBuf> {
    if dir == Path::new(crate::generate::BUNDLED) && !dir.exists() {
        return crate::generate::model_dir(crate::generate::BUNDLED);
    }
    Ok(dir.to_path_buf())
}

fn model_info(dir: &Path, as_json: bool) -> Result<()> {
    let info = reel_models::inspect::inspect(dir)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("path:     {}", info.path.display());
    if let Some(p) = &info.pipeline {
        println!("pipeline: {p}");
    }
    println!("{:<14} {:<28} {:>14} {:>8}  dtypes", "component", "class", "parameters", "tensors");
    for c in &info.components {
        let dtypes: Vec<String> = c.dtypes.keys().cloned().collect();
        println!(
            "{:<14} {:<28} {:>14} {:>8}  {}",
            c.name,
            c.class_name.as_deref().unwrap_or("-"),
            c.parameters,
            c.tensors,
            if dtypes.is_empty() { "-".to_string() } else { dtypes.join(",") }
        );
    }
    Ok(())
}

fn model_run(dir: &Path, component: ComponentArg, inputs: &Path, output: &Path) -> Result<()> {
    use candle_core::{DType, Device};
    let device = Device::Cpu;
    if !inputs.is_file() {
        anyhow::bail!("input file '{}' does not exist", inputs.display());
    }
    let tensors = candle_core::safetensors::load(inputs, &device).with_context(|| format!("reading inputs '{}'", inputs.display()))?;
    let need = |name: &str| {
        tensors.get(name).with_context(|| {
            let mut have: Vec<&String> = tensors.keys().collect();
            have.sort();
            format!("'{}' has no tensor '{name}' (it has: {have:?})", inputs.display())
        })
    };
    let started = Instant::now();
    let outputs: std::collections::HashMap<String, candle_core::Tensor> = match component {
        ComponentArg::Transformer => {
            let model = reel_models::load_wan_transformer(dir, DType::F32, &device)?;
            let input = reel_models::wan::WanInput {
                hidden_states: need("hidden_states")?,
                timestep: need("timestep")?,
                encoder_hidden_states: need("encoder_hidden_states")?,
                fps: tensors.get("fps"),
                frame_offset: 0,
            };
            [("sample".to_string(), model.forward(&input).context("running the transformer")?)].into()
        }
        ComponentArg::VaeEncode => {
            let vae = reel_models::load_wan_vae(dir, DType::F32, &device)?;
            let posterior = vae.encode(need("sample")?).context("encoding with the VAE")?;
            [("mean".to_string(), posterior.mean), ("logvar".to_string(), posterior.logvar)].into()
        }
        ComponentArg::VaeDecode => {
            let vae = reel_models::load_wan_vae(dir, DType::F32, &device)?;
            [("sample".to_string(), vae.decode(need("latents")?).context("decoding with the VAE")?)].into()
        }
        ComponentArg::TextEncoder => {
            let encoder = reel_models::load_text_encoder(dir, DType::F32, &device)?;
            let ids = need("input_ids")?;
            let mask = match tensors.get("attention_mask") {
                Some(m) => m.clone(),
                None => candle_core::Tensor::ones(ids.dims(), DType::U32, &device)?,
            };
            [("last_hidden_state".to_string(), encoder.encode(ids, &mask).context("running the text encoder")?)].into()
        }
    };
    let temp = output.with_file_name(format!(".{}.reel-tmp-{}", output.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), std::process::id()));
    let written = candle_core::safetensors::save(&outputs, &temp)
        .map_err(anyhow::Error::from)
        .and_then(|()| std::fs::rename(&temp, output).map_err(anyhow::Error::from));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e.context(format!("writing '{}'", output.display())));
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "model run done");
    println!("{}", output.display());
    Ok(())
}

fn data_synth(out: &Path, options: &SynthOptions, quiet: bool) -> Result<()> {
    let bar = progress_bar(options.count, "synth", quiet);
    let started = Instant::now();
    let report = reel_data::synthesize(out, options, &|| bar.inc(1), &crate::INTERRUPTED)
        .with_context(|| format!("writing Shapes World clips to '{}'", out.display()))?;
    bar.finish_and_clear();
    tracing::info!(clips = report.clips, seconds = started.elapsed().as_secs_f64(), "synth done");
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn data_samples(world: &WorldArgs, start: u64, count: u64) -> Result<()> {
    let world = ShapesWorld::new(world_config(world))?;
    for index in start..start.saturating_add(count) {
        println!("{}", serde_json::to_string(&world.sample(index))?);
    }
    Ok(())
}

/// A cheap moving test pattern: gradients, a moving bar, and per-frame noise so the encoder has work.
fn bench_frame(spec: &VideoSpec, index: u64) -> Frame {
    let (w, h) = (spec.width as u64, spec.height as u64);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    let bar = (index * 3) % w;
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state & 7) as u8;
            if x.abs_diff(bar) < w / 16 {
                data.extend_from_slice(&[230, 40, 40]);
            } else {
                data.extend_from_slice(&[(x * 255 / w) as u8 ^ noise, (y * 255 / h) as u8, ((x + y + index) % 256) as u8]);
            }
        }
    }
    Frame::from_rgb(spec.width, spec.height, data).expect("sized from the spec")
}

fn bench_video(out: &Path, format: Option<VideoFormat>, frames: u64, spec: VideoSpec, keep: bool) -> Result<()> {
    let rss_before = peak_rss();
    let mut writer = VideoWriter::create(out, format, spec, &EncodeOptions::default())?;
    let format = writer.format();
    let started = Instant::now();
    let mut rss_at_tenth = None;
    for index in 0..frames {
        if crate::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("interrupted after {index} frames; nothing was written");
        }
        writer.write(&bench_frame(&spec, index))?;
        if index + 1 == (frames / 10).max(1) {
            rss_at_tenth = peak_rss();
        }
    }
    let path = writer.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = if path.is_dir() {
        std::fs::read_dir(&path)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
    } else {
        std::fs::metadata(&path)?.len()
    };
    let mib = |b: Option<u64>| b.map(|b| (b as f64 / (1 << 20) as f64 * 10.0).round() / 10.0);
    let report = json!({
        "format": format,
        "frames": frames,
        "width": spec.width,
        "height": spec.height,
        "fps": spec.fps,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "frames_per_second": (frames as f64 / seconds * 10.0).round() / 10.0,
        "file_bytes": bytes,
        "peak_rss_mib_before": mib(rss_before),
        "peak_rss_mib_after_10_percent": mib(rss_at_tenth),
        "peak_rss_mib": mib(peak_rss()),
        "raw_video_mib": (frames * spec.width as u64 * spec.height as u64 * 3) as f64 / (1 << 20) as f64,
    });
    if !keep {
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
    println!("{report}");
    Ok(())
}
