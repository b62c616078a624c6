//! `reel`: the Reel command-line tool. Run `reel --help`.

mod bench;
mod cli;
mod commands;
mod eval;
mod generate;
mod train;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
}

/// The hint of the first error in the chain that has one.
fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|e| {
        if let Some(m) = e.downcast_ref::<reel_media::MediaError>() {
            m.hint()
        } else if let Some(d) = e.downcast_ref::<reel_data::DataError>() {
            d.hint()
        } else if let Some(m) = e.downcast_ref::<reel_models::ModelError>() {
            m.hint()
        } else if let Some(t) = e.downcast_ref::<reel_train::TrainError>() {
            t.hint()
        } else if let Some(v) = e.downcast_ref::<reel_eval::EvalError>() {
            v.hint()
        } else if e.downcast_ref::<reel_pipelines::RequestError>().is_some() {
            Some("fix that field of the request (docs/generate.md lists every field and its range); nothing was computed or written".into())
        } else {
            None
        }
    })
}

/// Set by Ctrl-C / SIGTERM; long-running commands poll it and stop cleanly
/// (removing partial outputs) instead of dying mid-write.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long candle's elementwise thread pool spins before parking (its default is 25 000
/// spins). Between elementwise ops the model runs matmuls on another pool; a worker spinning
/// meanwhile takes a core from them. On 2 cores a transformer training step used 26% less CPU
/// time at 1 000 (BENCHMARKS.md); `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the user wins.
const CANDLE_SPIN_LIMIT: &str = "1000";

fn main() -> ExitCode {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // Before any thread exists: candle reads it when its pool starts.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user wants out now.
            std::process::exit(130);
        }
        eprintln!("interrupted: stopping (press Ctrl-C again to quit at once)");
    }) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            // Context layers often repeat their source's text; print each part once.
            let mut parts: Vec<&str> = Vec::new();
            for c in &chain {
                if !parts.iter().any(|p| p.contains(c.as_str())) {
                    parts.push(c);
                }
            }
            eprintln!("error: {}", parts.join(": "));
            if let Some(h) = hint(&err) {
                eprintln!("hint: {h}");
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                return ExitCode::from(130);
            }
            ExitCode::from(2)
        }
    }
}
