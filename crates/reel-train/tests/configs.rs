//! Every run config committed under configs/ parses and passes the checks that need no models,
//! so a typo in one is caught here rather than hours into a run.

use std::path::{Path, PathBuf};

use reel_train::config::RunConfig;

fn configs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            configs(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn committed_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut found = Vec::new();
    configs(&root, &mut found);
    assert!(found.len() >= 4, "{found:?}");
    for path in &found {
        if let Err(e) = RunConfig::from_file(path) {
            panic!("{}: {e}", path.display());
        }
    }
    // The bundled model's VAE: 1500 image steps, then 3000 on 5-frame clips.
    let vae = RunConfig::from_file(&root.join("shapes-v1/vae.toml")).unwrap();
    let stages = vae.stages();
    assert_eq!(stages.iter().map(|s| (s.name.as_str(), s.steps, s.buckets[0].frames)).collect::<Vec<_>>(), [("images", 1500, 1), ("clips", 3000, 5)]);
    assert_eq!(vae.total_steps(), 4500);
}
