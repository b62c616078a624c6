//! Data parallel over MPI: two ranks with batch b must train like one rank with batch 2·b.
//!
//! Needs OpenMPI (`openmpi-bin`, `libopenmpi-dev`; `.ci/run` installs them). The test builds
//! `reel` with the `mpi` feature into `target/mpi` (the running cargo holds the lock on the
//! normal target directory) and skips, saying so, when `mpirun` is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

fn losses(run: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["loss"].as_f64().unwrap(), v["grad_norm"].as_f64().unwrap()))
        .collect()
}

fn config(dir: &Path, batch: usize) -> PathBuf {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let text = std::fs::read_to_string(smoke)
        .unwrap()
        .replace("batch_size = 4", &format!("batch_size = {batch}"))
        .replace("steps = 50", "steps = 8")
        .replace("every = 50", "every = 0");
    let path = dir.join(format!("batch{batch}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_mpi_ranks_match_one_rank_with_twice_the_batch() {
    if !have("mpirun") {
        eprintln!("skipped: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = root.join("target/mpi");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-p", "reel-cli", "--features", "mpi"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building reel with --features mpi failed");
    let mpi_reel = target.join("release/reel");

    let dir = tempfile::tempdir().unwrap();
    let (two, one) = (dir.path().join("two"), dir.path().join("one"));
    let status = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-n", "2"])
        .arg(&mpi_reel)
        .args(["train", config(dir.path(), 2).to_str().unwrap(), "--out", two.to_str().unwrap(), "-q"])
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .status()
        .expect("mpirun runs");
    assert!(status.success(), "mpirun -n 2 reel train failed");
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["train", config(dir.path(), 4).to_str().unwrap(), "--out", one.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (a, b) = (losses(&two), losses(&one));
    assert_eq!(a.len(), 8);
    assert_eq!(a.len(), b.len());
    for (step, ((la, ga), (lb, gb))) in a.iter().zip(&b).enumerate() {
        // Only the order of floating-point sums differs (per-rank batches vs one batch).
        assert!((la - lb).abs() <= 1e-4 * lb.abs().max(1.0), "step {}: loss {la} (2 ranks) vs {lb} (1 rank)", step + 1);
        assert!((ga - gb).abs() <= 1e-3 * gb.abs().max(1.0), "step {}: grad norm {ga} vs {gb}", step + 1);
    }
    // Only rank 0 writes the run directory: one metrics line per step.
    assert!(two.join("checkpoints").is_dir());
}
