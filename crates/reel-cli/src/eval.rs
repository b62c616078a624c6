//! `reel eval …`: adherence, reports, comparisons and the scorer's own robustness.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use reel_data::ShapesWorld;
use reel_eval::evaluate::{evaluate_entries, read_entries, EVALUATION};
use reel_eval::robustness::{measure, Condition};
use reel_eval::{write_report, Attribute, Degradation, Evaluation};
use serde_json::json;

use crate::cli::EvalCommand;
use crate::commands::{progress_bar, world_config};

pub fn run(command: EvalCommand, quiet: bool) -> Result<()> {
    match command {
        EvalCommand::Adherence { manifest, out, json, threads } => adherence(&manifest, out.as_deref(), json, threads, quiet),
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
        EvalCommand::Robustness { count, world, json } => robustness(count, &world_config(&world), json),
    }
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

fn adherence(manifest: &Path, out: Option<&Path>, as_json: bool, threads_wanted: Option<usize>, quiet: bool) -> Result<()> {
    let evaluation = evaluate(manifest, threads_wanted, quiet)?;
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
