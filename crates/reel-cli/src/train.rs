//! `reel train`, `reel train export` and `reel data cache`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use reel_train::config::{Bucket, DataConfig, SourceKind};
use reel_train::metrics::StepRecord;
use reel_train::{Observer, Options, Outcome, Quiet, TrainError};
use serde_json::json;

use crate::cli::{TrainArgs, TrainCommand};
use crate::INTERRUPTED;

/// A progress bar with step, loss, it/s and ETA (rank 0 only).
struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl Observer for Progress {
    fn start(&mut self, total: u64, first: u64) {
        if self.quiet {
            return;
        }
        self.bar = ProgressBar::new(total);
        self.bar.set_style(
            ProgressStyle::with_template("step {pos}/{len} {bar:24} {msg} [{elapsed_precise} < {eta_precise}]").expect("valid template").progress_chars("=> "),
        );
        self.bar.set_position(first);
        self.bar.reset_eta();
    }

    fn step(&mut self, r: &StepRecord, _: u64) {
        let it_s = if r.samples_per_s > 0.0 { format!("{:.2} samples/s", r.samples_per_s) } else { String::new() };
        self.bar.set_message(format!("loss {:.4} lr {:.2e} {it_s}", r.loss, r.lr));
        self.bar.set_position(r.step);
    }

    fn message(&mut self, text: &str) {
        if self.quiet {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}

pub fn train(args: TrainArgs, quiet: bool) -> Result<()> {
    match args.command {
        Some(TrainCommand::Export { run, out, raw, latent_stats }) => {
            let ck = reel_train::export(&run, &out, raw, latent_stats)?;
            println!("{}", json!({ "model": out, "checkpoint": ck, "weights": if raw { "raw" } else { "ema" } }));
            return Ok(());
        }
        Some(TrainCommand::Planner { model, scenes, steps, seed, silhouette, layout_strength, layout_first_frame, layout_guidance, layout_erosion, layout_refine }) => {
            let opts = reel_train::planner::PlannerOptions { scenes, steps, seed, silhouette: silhouette.into(), layout_strength, layout_first_frame, layout_guidance, layout_erosion, layout_refine, ..Default::default() };
            let report = reel_train::planner::train_planner(&model, &opts)?;
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        None => {}
    }
    let config = args.config.expect("clap requires CONFIG without a subcommand");
    let out = args.out.unwrap_or_else(|| PathBuf::from("runs").join(config.file_stem().unwrap_or_default()));
    let comm = reel_train::dist::from_environment()?;
    let lead = comm.rank() == 0;
    let mut progress = Progress { bar: ProgressBar::hidden(), quiet };
    let opts = Options { out: out.clone(), resume: args.resume, max_steps: args.max_steps };
    // Only rank 0 reports: the other ranks would repeat every line.
    let observer: &mut dyn Observer = if lead { &mut progress } else { &mut Quiet };
    let result = reel_train::train(&config, &opts, comm.as_ref(), &INTERRUPTED, observer);
    progress.bar.finish_and_clear();
    let (status, step) = match result {
        Ok(Outcome::Finished { step, .. }) => ("finished", step),
        Ok(Outcome::Stopped { step, .. }) => ("stopped", step),
        Err(TrainError::Interrupted { step }) => {
            if lead {
                eprintln!("interrupted after step {step}; checkpoint written. Continue with: reel train {} --out {} --resume", config.display(), out.display());
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            return Err(TrainError::Interrupted { step }.into());
        }
        Err(e) => return Err(e.into()),
    };
    if lead {
        let records = reel_train::metrics::read(&out.join(reel_train::metrics::FILE))?;
        let last = records.last();
        println!(
            "{}",
            json!({
                "status": status, "step": step, "run": out, "ranks": comm.size(),
                "loss": last.map(|r| r.loss), "first_loss": records.first().map(|r| r.loss),
                "metrics": out.join(reel_train::metrics::FILE), "plot": out.join(reel_train::metrics::PLOT),
            })
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn cache(
    input: Option<PathBuf>,
    model: PathBuf,
    out: &Path,
    [width, height, frames]: [u32; 3],
    fps: Vec<f64>,
    text: bool,
    max_text_len: usize,
    shard_size: usize,
    count: u64,
    scoring_share: f64,
    seed: u64,
    quiet: bool,
) -> Result<()> {
    let bucket = Bucket { width, height, frames, batch_size: 1, weight: 1.0 };
    reel_media::check_size(width, height)?;
    if !(0.0..=1.0).contains(&scoring_share) {
        anyhow::bail!("--scoring-share {scoring_share}: a share in [0, 1] (0: every kind of scene, 1: the scoring case only)");
    }
    if scoring_share > 0.0 && input.is_some() {
        anyhow::bail!("--scoring-share picks Shapes World scenes; it does not apply to a folder of videos (drop INPUT or the flag)");
    }
    let source = if input.is_some() { SourceKind::Videos } else { SourceKind::Shapes };
    let data: DataConfig = serde_json::from_value(json!({
        "source": source, "path": input, "fps": fps, "buckets": [bucket], "scoring_share": scoring_share, "shapes_seed": seed,
    }))?;
    let job = reel_train::cache::CacheJob { data, bucket, model, with_text: text, max_text_len, shard_size, count: Some(count) };
    let bar = crate::commands::progress_bar(0, "encoding", quiet);
    let index = reel_train::cache::build(&job, out, &INTERRUPTED, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    for s in &index.skipped {
        eprintln!("skipped {s}");
    }
    println!("{}", json!({ "cache": out, "entries": index.entries.len(), "shards": index.shards.len(), "skipped": index.skipped.len(), "text": index.text_encoder_hash.is_some() }));
    Ok(())
}
