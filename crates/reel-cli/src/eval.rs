//! `reel eval …`: adherence, reports, comparisons and the scorer's own robustness.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use reel_data::ShapesWorld;
use reel_eval::evaluate::{evaluate_entries, read_entries, ReferenceDistance, EVALUATION};
use reel_eval::features::train::TrainOptions;
use reel_eval::features::{clip_distance, clip_files, read_clips, FeatureNet, I3dLayer};
use reel_eval::robustness::{measure, Condition};
use reel_eval::{write_report, Attribute, Degradation, Evaluation};
use serde_json::json;

use crate::cli::{EvalCommand, FeaturesCommand, I3dLayerArg};
use crate::commands::{progress_bar, world_config};

pub fn run(command: EvalCommand, quiet: bool) -> Result<()> {
    match command {
        EvalCommand::Adherence { manifest, model, split, scenes, prompts, samples, seed, steps, out, json, threads, reference, features } => {
            let reference = reference.map(|r| (r, features));
            let manifest = match (manifest, model) {
                (Some(m), _) => m,
                (None, Some(model)) => {
                    let out = out.as_deref().expect("clap requires --out with --model");
                    let prompts = match prompts {
                        Some(file) => read_prompts(&file, samples)?,
                        None => {
                            let world = ShapesWorld::new(reel_data::WorldConfig { seed, split: split.into(), scenes: scenes.into(), ..Default::default() })?;
                            (0..samples as u64).map(|i| world.sample(i)).map(|s| Prompt { caption: s.caption, labels: s.labels }).collect()
                        }
                    };
                    generate_set(&model, &prompts, seed, steps, out, quiet)?
                }
                (None, None) => unreachable!("clap requires --manifest or --model"),
            };
            adherence(&manifest, out.as_deref(), json, threads, reference, quiet)
        }
        EvalCommand::Report { path, out, max_clips } => {
            let (evaluation, dir) = open(&path, quiet)?;
            let out = out.unwrap_or_else(|| dir.join("report"));
            let name = display_name(&path);
            let written = write_report(&[(name, evaluation)], &out, max_clips)?;
            println!("{}", serde_json::to_string_pretty(&written)?);
            Ok(())
        }
        EvalCommand::Compare { a, b, out, max_clips } => {
            let (ea, _) = open(&a, quiet)?;
            let (eb, _) = open(&b, quiet)?;
            let (na, mut nb) = (display_name(&a), display_name(&b));
            if nb == na {
                nb.push_str(" (2)");
            }
            let written = write_report(&[(na, ea), (nb, eb)], &out, max_clips)?;
            println!("{}", serde_json::to_string_pretty(&written)?);
            Ok(())
        }
        EvalCommand::Fvd { a, b, features, i3d_layer, batch, json } => fvd(&a, &b, features.as_deref(), i3d_layer, batch, json, quiet),
        EvalCommand::Features(FeaturesCommand::Train { out, steps, batch, lr, seed, eval_clips, augment }) => {
            let options = TrainOptions { steps, batch, lr, seed, eval_clips, augment, ..Default::default() };
            let bar = progress_bar(steps as u64, "training", quiet);
            let report = reel_eval::features::train::train(&options, &out, &crate::INTERRUPTED, |_, loss| {
                bar.set_message(format!("training (loss {loss:.3})"));
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            let accuracy: serde_json::Map<String, serde_json::Value> = report.holdout_accuracy.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let first = report.loss.first().map(|p| p.1);
            let last = report.loss.last().map(|p| p.1);
            println!("{}", json!({"out": out, "first_loss": first, "last_loss": last, "holdout_accuracy": accuracy, "seconds": report.seconds}));
            Ok(())
        }
        EvalCommand::Robustness { count, world, json } => robustness(count, &world_config(&world), json),
    }
}

/// A prompt with the labels its clip should show.
#[derive(Clone, Debug, serde::Deserialize)]
struct Prompt {
    caption: String,
    labels: reel_data::SceneLabels,
}

/// The first `n` prompts of a JSON-lines file (bad lines named by number).
fn read_prompts(path: &Path, n: usize) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read prompts '{}'", path.display()))?;
    let prompts = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(n)
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}: expected a JSON object with caption and labels (as `reel data samples` prints)", path.display(), i + 1)))
        .collect::<Result<Vec<Prompt>>>()?;
    if prompts.is_empty() {
        anyhow::bail!("'{}' holds no prompts", path.display());
    }
    Ok(prompts)
}

/// Generates one clip per prompt into `out/clips/` (clip i with seed `seed + i`) and writes
/// `out/manifest.jsonl` for them; returns the manifest. Every request is checked before the
/// first clip is made.
fn generate_set(model: &str, prompts: &[Prompt], seed: u64, steps: Option<u32>, out: &Path, quiet: bool) -> Result<PathBuf> {
    let dir = crate::generate::model_dir(model)?;
    let read = reel_pipelines::model::read_spec(&dir)?;
    let spec = &read.0;
    let requests = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let req = reel_pipelines::Request { prompt: p.caption.clone(), seed: Some(seed + i as u64), steps, ..Default::default() };
            reel_pipelines::request::resolve(&req, spec, Some(reel_media::VideoFormat::Mp4)).with_context(|| format!("prompt {}: '{}'", i + 1, p.caption))
        })
        .collect::<Result<Vec<_>>>()?;
    let loaded = reel_pipelines::Model::load(&dir, read).with_context(|| format!("loading model '{}'", dir.display()))?;
    let clips = out.join("clips");
    std::fs::create_dir_all(&clips).with_context(|| format!("cannot create '{}'", clips.display()))?;
    let bar = progress_bar(prompts.len() as u64, "generating", quiet);
    let mut lines = String::new();
    for (i, (p, mut r)) in prompts.iter().zip(requests).enumerate() {
        loaded.fit_vocabulary(&mut r);
        let file = format!("clips/clip_{i:06}.mp4");
        crate::generate::render(&loaded, &r, &out.join(&file), &|_, _| {})?;
        lines.push_str(&serde_json::to_string(&json!({"file": file, "caption": p.caption, "labels": p.labels, "prompt": r.prompt, "seed": r.seed, "model": model}))?);
        lines.push('\n');
        bar.inc(1);
    }
    bar.finish_and_clear();
    let manifest = out.join("manifest.jsonl");
    std::fs::write(&manifest, lines).with_context(|| format!("writing '{}'", manifest.display()))?;
    Ok(manifest)
}

fn feature_net(path: Option<&Path>, layer: I3dLayer) -> Result<FeatureNet> {
    Ok(match path {
        Some(path) => FeatureNet::load(path, layer)?,
        None => FeatureNet::bundled()?,
    })
}

fn slices(clips: &[Vec<reel_media::Frame>]) -> Vec<&[reel_media::Frame]> {
    clips.iter().map(Vec::as_slice).collect()
}

fn fvd(a: &Path, b: &Path, features: Option<&Path>, layer: I3dLayerArg, batch: usize, as_json: bool, quiet: bool) -> Result<()> {
    // Everything is checked and decoded before the first forward pass.
    let net = feature_net(features, layer.into())?;
    let (fa, fb) = (clip_files(a)?, clip_files(b)?);
    let (ca, cb) = (read_clips(&fa)?, read_clips(&fb)?);
    let bar = progress_bar((ca.len() + cb.len()) as u64, "features", quiet);
    let distance = clip_distance(&net, &slices(&ca), &slices(&cb), batch, |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if as_json {
        println!("{}", serde_json::to_string(&json!({"a": a, "b": b, "network": distance.network, "n": distance.n, "dim": distance.dim, "frechet": distance.frechet}))?);
    } else {
        println!("Fréchet distance {:.3} ({} features of {}; {} and {} clips)", distance.frechet, distance.dim, distance.network, distance.n[0], distance.n[1]);
    }
    Ok(())
}

fn threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// A short name for a path in report headings: its directory name, or file stem.
fn display_name(path: &Path) -> String {
    let named = if path.file_name().is_some_and(|n| n == EVALUATION || n == "manifest.jsonl") { path.parent().unwrap_or(path) } else { path };
    let name = named.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.is_empty() {
        path.display().to_string()
    } else {
        name
    }
}

fn evaluate(manifest: &Path, threads_wanted: Option<usize>, quiet: bool) -> Result<Evaluation> {
    let entries = read_entries(manifest)?;
    let bar = progress_bar(entries.len() as u64, "scoring", quiet);
    let evaluation = evaluate_entries(manifest, &entries, threads(threads_wanted), &|| bar.inc(1))?;
    bar.finish_and_clear();
    Ok(evaluation)
}

/// An evaluation from a saved one (file or directory) or from a manifest (scored now), with the
/// directory its report goes beside.
fn open(path: &Path, quiet: bool) -> Result<(Evaluation, PathBuf)> {
    let dir = if path.is_dir() { path.to_path_buf() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let manifest = if path.is_dir() && !path.join(EVALUATION).exists() && path.join("manifest.jsonl").exists() {
        Some(path.join("manifest.jsonl"))
    } else if path.extension().is_some_and(|e| e == "jsonl") {
        Some(path.to_path_buf())
    } else {
        None
    };
    let evaluation = match manifest {
        Some(m) => evaluate(&m, None, quiet)?,
        None => Evaluation::load(path)?,
    };
    Ok((evaluation, dir))
}

fn adherence(manifest: &Path, out: Option<&Path>, as_json: bool, threads_wanted: Option<usize>, reference: Option<(PathBuf, Option<PathBuf>)>, quiet: bool) -> Result<()> {
    // The network and the reference clips are checked before any scoring.
    let reference = match reference {
        Some((set, features)) => {
            let net = feature_net(features.as_deref(), I3dLayer::Logits)?;
            let clips = read_clips(&clip_files(&set)?)?;
            Some((set, net, clips))
        }
        None => None,
    };
    let mut evaluation = evaluate(manifest, threads_wanted, quiet)?;
    if let Some((set, net, reference_clips)) = reference {
        let files: Vec<PathBuf> = evaluation.clips.iter().map(|c| evaluation.root.join(&c.file)).collect();
        let clips = read_clips(&files)?;
        let bar = progress_bar((reference_clips.len() + clips.len()) as u64, "features", quiet);
        let distance = clip_distance(&net, &slices(&reference_clips), &slices(&clips), 16, |n| bar.set_position(n as u64))?;
        bar.finish_and_clear();
        evaluation.frechet = Some(ReferenceDistance { reference: set.display().to_string(), distance });
    }
    let saved = match out {
        Some(dir) => Some(evaluation.save(dir).with_context(|| format!("saving the evaluation in '{}'", dir.display()))?),
        None => None,
    };
    let a = &evaluation.adherence;
    if as_json {
        let value = json!({
            "n": a.n,
            "accuracy": a.accuracy,
            "all_correct": a.all_correct,
            "confusion": a.confusion,
            "temporal": evaluation.temporal,
            "frechet": evaluation.frechet,
            "evaluation": saved,
        });
        println!("{}", serde_json::to_string(&value)?);
        return Ok(());
    }
    println!("{} clips from {}", a.n, evaluation.source);
    for attribute in Attribute::ALL {
        if let Some(v) = a.accuracy.get(attribute.name()) {
            println!("  {:<8} {:>6.1}%", attribute.name(), 100.0 * v);
        }
    }
    println!("  {:<8} {:>6.1}%", "all", 100.0 * a.all_correct);
    let t = &evaluation.temporal;
    println!("  flicker {:.4} · motion smoothness {:.3} · subject consistency {:.3} · dynamic degree {:.2}", t.flicker, t.motion_smoothness, t.subject_consistency, t.dynamic_degree);
    if let Some(f) = &evaluation.frechet {
        println!("  Fréchet distance to {}: {:.3} ({} features of {})", f.reference, f.distance.frechet, f.distance.dim, f.distance.network);
    }
    if let Some(path) = saved {
        println!("saved {}", path.display());
    }
    Ok(())
}

fn robustness(count: u64, world: &reel_data::WorldConfig, as_json: bool) -> Result<()> {
    let world = ShapesWorld::new(*world)?;
    let mut conditions = vec![("clean".to_string(), None)];
    conditions.extend(Degradation::standard().into_iter().map(|(name, d)| (name.to_string(), Some(d))));
    let results = measure(&world, count, &conditions, threads(None))?;
    if as_json {
        println!("{}", serde_json::to_string(&results)?);
        return Ok(());
    }
    print_robustness(&results);
    Ok(())
}

fn print_robustness(results: &[Condition]) {
    let attributes = Attribute::ALL;
    print!("| condition | all correct |");
    for a in attributes {
        print!(" {} |", a.name());
    }
    println!(" flat: colour / shape / motion |");
    println!("|---|---|{}---|", "---|".repeat(attributes.len()));
    for c in results {
        print!("| {} | {:.1}% |", c.name, 100.0 * c.summary.all_correct);
        for a in attributes {
            print!(" {:.1}% |", 100.0 * c.summary.accuracy.get(a.name()).copied().unwrap_or(0.0));
        }
        let flat = &c.by_style["flat"].accuracy;
        let pct = |k: &str| 100.0 * flat.get(k).copied().unwrap_or(0.0);
        println!(" {:.1} / {:.1} / {:.1}% |", pct("color"), pct("shape"), pct("motion"));
    }
}
