//! `reel train`, `reel train export` and `reel data cache`, end to end through the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel")).args(args).arg("-q").output().expect("reel runs")
}

fn ok(args: &[&str]) -> serde_json::Value {
    let out = reel(args);
    assert!(out.status.success(), "reel {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).or_else(|_| serde_json::from_str(stdout.lines().last().unwrap_or("null"))).unwrap_or(serde_json::Value::Null)
}

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml")
}

/// Loss fields of metrics.jsonl, verbatim (to compare bit for bit).
fn losses(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| format!("{}:{}", v["step"], v["loss"]))
        .collect()
}

fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn mean(v: &[serde_json::Value]) -> f64 {
    v.iter().map(|r| r["loss"].as_f64().unwrap()).sum::<f64>() / v.len() as f64
}

#[test]
fn the_smoke_config_trains_and_a_resumed_run_repeats_it_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    let cfg = smoke();
    let cfg = cfg.to_str().unwrap();
    let summary = ok(&["train", cfg, "--out", whole.to_str().unwrap()]);
    assert_eq!(summary["status"], "finished");
    let r = records(&whole);
    assert_eq!(r.len(), 50);
    for key in ["step", "loss", "grad_norm", "lr", "samples_per_s", "peak_memory_mib"] {
        assert!(r[0].get(key).is_some(), "metrics lack {key}");
    }
    let (start, end) = (mean(&r[..5]), mean(&r[45..]));
    assert!(end < 0.6 * start, "loss fell only from {start} to {end}");
    for f in ["config.toml", "config.resolved.json", "metrics.png", "tokenizer.json", "samples/step-00000050/00.mp4", "samples/step-00000050/sheet.png"] {
        assert!(whole.join(f).is_file(), "{f} missing");
    }
    let kept: Vec<_> = std::fs::read_dir(whole.join("checkpoints")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(kept.len(), 2, "keep = 2: {kept:?}");

    // Interrupted after step 20 (--max-steps stops cleanly with a checkpoint), then resumed.
    let stopped = ok(&["train", cfg, "--out", split.to_str().unwrap(), "--max-steps", "20"]);
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(losses(&split).len(), 20);
    // Starting over into a run with checkpoints is refused.
    let again = reel(&["train", cfg, "--out", split.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    ok(&["train", cfg, "--out", split.to_str().unwrap(), "--resume"]);
    assert_eq!(losses(&split), losses(&whole), "the resumed run differs from the uninterrupted one");

    // A finished run may be lengthened: more steps in its last stage and nothing else changed.
    let text = std::fs::read_to_string(smoke()).unwrap();
    let longer = write_config(dir.path(), "longer.toml", &text.replace("steps = 50", "steps = 53"));
    let out = ok(&["train", longer.to_str().unwrap(), "--out", split.to_str().unwrap(), "--resume"]);
    assert_eq!(out["step"], 53);
    let grown = losses(&split);
    assert_eq!((grown.len(), &grown[..50]), (53, &losses(&whole)[..]));
    // Any other change is still refused, and nothing is written.
    let other = write_config(dir.path(), "other.toml", &text.replace("steps = 50", "steps = 56").replace("seed = 0", "seed = 3"));
    let refused = reel(&["train", other.to_str().unwrap(), "--out", split.to_str().unwrap(), "--resume"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("different config"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(losses(&split).len(), 53);

    // Export: a diffusers-layout model directory that `reel model info` reads.
    let model = dir.path().join("model");
    ok(&["train", "export", whole.to_str().unwrap(), model.to_str().unwrap()]);
    for f in ["model_index.json", "transformer/config.json", "vae/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json", "scheduler/scheduler_config.json"] {
        assert!(model.join(f).is_file(), "export lacks {f}");
    }
    let info = ok(&["model", "info", model.to_str().unwrap(), "--json"]);
    assert!(info.to_string().contains("WanTransformer3DModel"), "{info}");
    // The default request under "reel" in model_index.json is a setting, not a component.
    let names: Vec<&str> = info["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["scheduler", "text_encoder", "tokenizer", "transformer", "vae"]);

    // Training continues from the export (model.from): it starts where the first run ended.
    let text = std::fs::read_to_string(smoke()).unwrap();
    let (start, end) = (text.find("[model]").unwrap(), text.find("[data]").unwrap());
    let text = format!("{}[model]\nfrom = \"{}\"\nmax_text_len = 24\n\n{}", &text[..start], model.display(), &text[end..]).replace("steps = 50", "steps = 2");
    let cfg = write_config(dir.path(), "continue.toml", &text.replace("every = 50", "every = 0"));
    let cont = dir.path().join("continue");
    ok(&["train", cfg.to_str().unwrap(), "--out", cont.to_str().unwrap()]);
    let first_fresh = records(&whole)[0]["loss"].as_f64().unwrap();
    let first_continued = records(&cont)[0]["loss"].as_f64().unwrap();
    assert!(first_continued < 0.7 * first_fresh, "continued run starts at {first_continued}, a fresh one at {first_fresh}");
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The smoke config with its [data] section replaced.
fn smoke_with_data(data: &str, steps: u64) -> String {
    let text = std::fs::read_to_string(smoke()).unwrap();
    let start = text.find("[data]").unwrap();
    let end = text.find("[optimizer]").unwrap();
    let text = format!("{}{data}\n{}", &text[..start], &text[end..]);
    text.replace("steps = 50", &format!("steps = {steps}")).replace("every = 50", "every = 0")
}

#[test]
fn a_folder_of_videos_with_a_corrupt_file_trains_and_reports_the_skip() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    ok(&["data", "synth", "--out", clips.to_str().unwrap(), "--count", "6", "--format", "mp4", "--width", "48", "--height", "32", "--frames", "17"]);
    std::fs::write(clips.join("broken.mp4"), b"\x00\x00\x00\x18ftypisomgarbage that is not a video").unwrap();
    // A truncated copy of a good clip: its header probes fine, its frames run out while decoding.
    let good = std::fs::read(clips.join("clip_000000.mp4")).unwrap();
    std::fs::write(clips.join("truncated.mp4"), &good[..good.len() / 3]).unwrap();
    let mut manifest = std::fs::read_to_string(clips.join("manifest.jsonl")).unwrap();
    manifest.push_str("{\"file\":\"broken.mp4\",\"caption\":\"a red ball\"}\n");
    manifest.push_str("{\"file\":\"truncated.mp4\",\"caption\":\"a blue box\"}\n");
    std::fs::write(clips.join("manifest.jsonl"), manifest).unwrap();
    let data = format!(
        "[data]\nsource = \"videos\"\npath = \"{}\"\nfps = [8]\nflip = 0.5\n[[data.buckets]]\nwidth = 32\nheight = 32\nframes = 9\nbatch_size = 2\n",
        clips.display()
    );
    let cfg = write_config(dir.path(), "videos.toml", &smoke_with_data(&data, 6));
    let run = dir.path().join("run");
    let out = reel(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 1") && stderr.contains("broken.mp4"), "{stderr}");
    let r = records(&run);
    assert_eq!(r.len(), 6);
    // 12 draws over 7 readable-looking clips reach the truncated one at least once; each
    // time it is replaced by another clip and counted.
    assert!(r[5]["skipped"].as_u64().unwrap() >= 2, "{}", r[5]);
    assert!(stderr.contains("truncated.mp4"), "{stderr}");
}

#[test]
fn bad_configs_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(smoke()).unwrap();
    for (bad, want) in [
        (text.replace("[train]", "[train]\nlearnig_rate = 1"), "learnig_rate"),
        (text.replace("num_layers = 2", "num_layers = 2\nnum_heads = 3"), "model.transformer.num_heads"),
        (text.replace("width = 32", "width = 31"), "31"),
        (text.replace("text_dim = 32", "text_dim = 16"), "text_dim"),
        (text.replace("in_channels = 4", "in_channels = 5"), "in_channels"),
    ] {
        let cfg = write_config(dir.path(), "bad.toml", &bad);
        let run = dir.path().join("run");
        let out = reel(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want) && stderr.contains("hint:"), "{want}: {stderr}");
        assert!(!run.exists(), "{want}: a run directory was created");
    }
    let out = reel(&["train", smoke().to_str().unwrap(), "--out", dir.path().join("none").to_str().unwrap(), "--resume"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to resume"));
}

#[test]
fn a_vae_trains_and_a_latent_cache_made_with_it_trains_a_transformer() {
    let dir = tempfile::tempdir().unwrap();
    let vae_cfg = r#"
task = "vae"
seed = 1
[model.vae]
base_dim = 8
z_dim = 4
num_res_blocks = 1
latents_mean = []
latents_std = []
[data]
source = "shapes"
[[data.buckets]]
width = 32
height = 32
frames = 5
batch_size = 2
[optimizer]
lr = 3e-3
[train]
steps = 30
foreground_weight = 10.0
edge_weight = 1.0
[validation]
every = 30
clips = 1
[checkpoint]
every = 30
"#;
    let cfg = write_config(dir.path(), "vae.toml", vae_cfg);
    let run = dir.path().join("vae-run");
    ok(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    let r = records(&run);
    assert!(mean(&r[25..]) < 0.8 * mean(&r[..5]), "VAE loss {} → {}", mean(&r[..5]), mean(&r[25..]));
    assert!(run.join("samples/step-00000030/recon-00.mp4").is_file());
    assert!(run.join("samples/step-00000030/psnr.json").is_file());
    let vae_model = dir.path().join("vae-model");
    ok(&["train", "export", run.to_str().unwrap(), vae_model.to_str().unwrap(), "--latent-stats", "8"]);
    // The export measured its latents: one mean and one positive std per latent channel.
    let vae_config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(vae_model.join("vae/config.json")).unwrap()).unwrap();
    let (means, stds) = (vae_config["latents_mean"].as_array().unwrap(), vae_config["latents_std"].as_array().unwrap());
    assert_eq!((means.len(), stds.len()), (vae_config["z_dim"].as_u64().unwrap() as usize, means.len()));
    assert!(stds.iter().all(|s| s.as_f64().unwrap() > 0.0) && means.iter().any(|m| m.as_f64().unwrap() != 0.0), "{vae_config}");

    // A decoder-only run from that VAE (encoder frozen) exports the statistics it started with;
    // it weighs what its reconstructions paint as objects too (`foreground_of = "either"`).
    let decoder_cfg = write_config(
        dir.path(),
        "decoder.toml",
        &format!(
            "task = \"vae\"\nseed = 3\n[model]\nfrom = \"{}\"\n[data]\nsource = \"shapes\"\n[[data.buckets]]\nwidth = 32\nheight = 32\nframes = 5\nbatch_size = 1\n\
             [optimizer]\nlr = 1e-2\n[train]\nsteps = 2\nforeground_weight = 10.0\nforeground_of = \"either\"\nfreeze = [\"vae.encoder.*\", \"vae.quant_conv.*\"]\n[validation]\nevery = 0\n",
            vae_model.display()
        ),
    );
    let decoder_run = dir.path().join("decoder-run");
    ok(&["train", decoder_cfg.to_str().unwrap(), "--out", decoder_run.to_str().unwrap()]);
    let losses: Vec<f64> = records(&decoder_run).iter().filter_map(|r| r["loss"].as_f64()).collect();
    assert!(losses.len() == 2 && losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    let decoder_model = dir.path().join("decoder-model");
    ok(&["train", "export", decoder_run.to_str().unwrap(), decoder_model.to_str().unwrap(), "--latent-stats", "8"]);
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(decoder_model.join("vae/config.json")).unwrap()).unwrap();
    assert_eq!((&kept["latents_mean"], &kept["latents_std"]), (&vae_config["latents_mean"], &vae_config["latents_std"]));
    // The frozen encoder came through unchanged (its posterior is cut from the graph); the
    // decoder trained.
    let load = |m: &std::path::Path| candle_core::safetensors::load(m.join("vae/diffusion_pytorch_model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let (before, after) = (load(&vae_model), load(&decoder_model));
    let same = |name: &str| before[name].flatten_all().unwrap().to_vec1::<f32>().unwrap() == after[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let encoder: Vec<&String> = before.keys().filter(|k| k.starts_with("encoder.") || k.starts_with("quant_conv.")).collect();
    let decoder: Vec<&String> = before.keys().filter(|k| k.starts_with("decoder.")).collect();
    assert!(!encoder.is_empty() && encoder.iter().all(|k| same(k)), "the frozen encoder changed");
    assert!(decoder.iter().any(|k| !same(k)), "the decoder did not train");

    // Cache Shapes World clips with that VAE, then train a transformer from the cache.
    let cache = dir.path().join("cache");
    let made = ok(&["data", "cache", "--model", vae_model.to_str().unwrap(), "--out", cache.to_str().unwrap(), "--width", "32", "--height", "32", "--frames", "9", "--count", "12", "--shard-size", "5"]);
    assert_eq!(made["entries"], 12);
    assert_eq!(made["shards"], 3);
    // --seed: another world seed, other clips.
    let captions = |dir: &std::path::Path| -> Vec<String> {
        let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
        index["entries"].as_array().unwrap().iter().map(|e| e["caption"].as_str().unwrap().to_string()).collect()
    };
    let reseeded = dir.path().join("cache-seed-5");
    ok(&["data", "cache", "--model", vae_model.to_str().unwrap(), "--out", reseeded.to_str().unwrap(), "--width", "32", "--height", "32", "--frames", "9", "--count", "4", "--seed", "5"]);
    let (first, other) = (captions(&cache), captions(&reseeded));
    assert_eq!(other.len(), 4);
    assert_ne!(first[..4], other[..], "seed 5 cached the clips of seed 0");
    // --scoring-share 1: every cached clip is a one-object, static, flat, neutral scene; a
    // share outside [0, 1] is refused before anything is written.
    let scoring = dir.path().join("scoring-cache");
    let args = |share: &str| -> Vec<String> {
        ["data", "cache", "--model", vae_model.to_str().unwrap(), "--out", scoring.to_str().unwrap(), "--width", "32", "--height", "32", "--frames", "9", "--count", "12", "--scoring-share", share]
            .map(String::from)
            .to_vec()
    };
    let refused = reel(&args("1.5").iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--scoring-share 1.5"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!scoring.exists());
    ok(&args("1").iter().map(String::as_str).collect::<Vec<_>>());
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(scoring.join("index.json")).unwrap()).unwrap();
    let captions: Vec<&str> = index["entries"].as_array().unwrap().iter().map(|e| e["caption"].as_str().unwrap()).collect();
    assert_eq!(captions.len(), 12);
    for c in captions {
        assert!(![" and ", "pans", "zooms", "pixel", "outlined", "line-art", "gloomy", "dark", "cheerful", "bright"].iter().any(|w| c.contains(w)), "{c}");
    }
    let text = smoke_with_data(&format!("[data]\nsource = \"cache\"\npath = \"{}\"\n[[data.buckets]]\nwidth = 32\nheight = 32\nframes = 9\nbatch_size = 4\n", cache.display()), 4);
    let start = text.find("[model.vae]").unwrap();
    let end = text.find("# A fresh reel-text").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]).replace("[model]\n", &format!("[model]\nfrom = \"{}\"\n", vae_model.display()));
    let cfg = write_config(dir.path(), "cached.toml", &text);
    ok(&["train", cfg.to_str().unwrap(), "--out", dir.path().join("cached-run").to_str().unwrap()]);
    assert_eq!(records(&dir.path().join("cached-run")).len(), 4);

    // A cache made with other VAE weights is refused.
    let index = cache.join("index.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    v["vae_hash"] = "0000000000000000".into();
    std::fs::write(&index, v.to_string()).unwrap();
    let out = reel(&["train", cfg.to_str().unwrap(), "--out", dir.path().join("refused").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("made with VAE weights"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ctrl_c_checkpoints_the_step_it_was_on_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(smoke()).unwrap().replace("steps = 50", "steps = 100000").replace("every = 50", "every = 0");
    let cfg = write_config(dir.path(), "long.toml", &text);
    let run = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "-q"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < 3 {
        assert!(started.elapsed().as_secs() < 120, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let last = records(&run).last().unwrap()["step"].as_u64().unwrap();
    assert!(run.join(format!("checkpoints/step-{last:08}/state.json")).is_file(), "no checkpoint at step {last}");
    let resumed = ok(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--resume", "--max-steps", &(last + 2).to_string()]);
    assert_eq!(resumed["step"], last + 2);
}

fn tensors(path: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
}

fn same(a: &candle_core::Tensor, b: &candle_core::Tensor) -> bool {
    a.flatten_all().unwrap().to_vec1::<f32>().unwrap() == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn an_image_stage_then_a_video_stage_with_frozen_groups_keyframes_and_accumulation() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(smoke())
        .unwrap()
        .replace("in_channels = 4", "in_channels = 9")
        .replace("steps = 50\n", "grad_accum = 2\nkeyframes = [0, -1]\n")
        .replace("every = 50", "every = 0")
        .replace("batch_size = 4", "batch_size = 2")
        + r#"
[[stages]]
name = "image"
steps = 3
buckets = [{ width = 32, height = 32, frames = 1, batch_size = 4 }]

[[stages]]
name = "video"
steps = 3
freeze = ["text_encoder.*", "transformer.blocks.0.*"]
lr = 1e-3
"#;
    let cfg = write_config(dir.path(), "stages.toml", &text);
    let run = dir.path().join("run");
    ok(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    let r = records(&run);
    let stages: Vec<&str> = r.iter().map(|x| x["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["image", "image", "image", "video", "video", "video"]);
    // Stopped at the stage boundary and resumed, the run continues the same curve.
    let split = dir.path().join("split");
    ok(&["train", cfg.to_str().unwrap(), "--out", split.to_str().unwrap(), "--max-steps", "3"]);
    ok(&["train", cfg.to_str().unwrap(), "--out", split.to_str().unwrap(), "--resume"]);
    assert_eq!(losses(&split), losses(&run));
    // Accumulation: 2 micro-batches of 4 (image) and of 2 (video) per step.
    assert_eq!(r[2]["samples"], 24);
    assert_eq!(r[5]["samples"], 36);
    // Frozen groups did not move during the video stage; the rest did.
    let after_image = tensors(&run.join("checkpoints/step-00000003/model.safetensors"));
    let end = tensors(&run.join("checkpoints/step-00000006/model.safetensors"));
    for (name, t) in &end {
        let frozen = name.starts_with("text_encoder.") || name.starts_with("transformer.blocks.0.");
        let trains = name.starts_with("transformer.blocks.1.ffn");
        if frozen {
            assert!(same(t, &after_image[name]), "{name} is frozen but changed");
        } else if trains {
            assert!(!same(t, &after_image[name]), "{name} should train");
        }
    }
}

#[test]
fn accumulating_two_micro_batches_matches_one_batch_of_twice_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(smoke()).unwrap().replace("steps = 50", "steps = 4").replace("every = 50", "every = 0");
    let big = write_config(dir.path(), "big.toml", &base);
    let small = write_config(dir.path(), "small.toml", &base.replace("batch_size = 4", "batch_size = 2").replace("[train]\n", "[train]\ngrad_accum = 2\n"));
    ok(&["train", big.to_str().unwrap(), "--out", dir.path().join("big").to_str().unwrap()]);
    ok(&["train", small.to_str().unwrap(), "--out", dir.path().join("small").to_str().unwrap()]);
    for (a, b) in records(&dir.path().join("big")).iter().zip(records(&dir.path().join("small")).iter()) {
        let (la, lb) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((la - lb).abs() < 1e-4 * la.abs().max(1.0), "step {}: {la} vs {lb}", a["step"]);
    }
}

#[test]
fn a_folder_of_captioned_images_feeds_an_image_stage() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for (i, (rgb, caption)) in [([200, 30, 30], "a red square"), ([30, 30, 200], "a blue square"), ([30, 200, 30], "a green square")].iter().enumerate() {
        reel_media::write_png(&images.join(format!("{i}.png")), &reel_media::Frame::filled(40, 30, *rgb)).unwrap();
        std::fs::write(images.join(format!("{i}.txt")), caption).unwrap();
    }
    // An image without a caption is skipped and counted.
    reel_media::write_png(&images.join("uncaptioned.png"), &reel_media::Frame::filled(40, 30, [0, 0, 0])).unwrap();
    let data = format!("[data]\nsource = \"images\"\npath = \"{}\"\n[[data.buckets]]\nwidth = 32\nheight = 32\nframes = 1\nbatch_size = 2\n", images.display());
    let cfg = write_config(dir.path(), "images.toml", &smoke_with_data(&data, 3));
    let run = dir.path().join("run");
    ok(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    let r = records(&run);
    assert_eq!(r.len(), 3);
    assert_eq!(r[2]["skipped"], 1);
    assert_eq!(r[2]["samples"], 6);
}

#[test]
fn a_launch_by_mpirun_without_the_mpi_feature_is_refused_with_the_fix() {
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["train", smoke().to_str().unwrap(), "--out", "/nonexistent/never-created", "-q"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("without the `mpi` feature") && stderr.contains("--features mpi"), "{stderr}");
}

#[test]
fn first_frame_conditioning_trains_exports_and_generates_in_two_passes() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(smoke()).unwrap().replace("steps = 50", "steps = 2").replace("every = 50", "every = 0");
    let cfg = write_config(dir.path(), "ff.toml", &text.replace("condition_dropout = 0.1", "condition_dropout = 0.1\nfirst_frame_share = 0.5"));
    let run = dir.path().join("run");
    ok(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(records(&run).iter().all(|r| r["loss"].as_f64().unwrap().is_finite()));
    // The export makes a first-frame pass by default, as long as the clip's own.
    let model = dir.path().join("model");
    ok(&["train", "export", run.to_str().unwrap(), model.to_str().unwrap()]);
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(model.join("model_index.json")).unwrap()).unwrap();
    assert_eq!(index["reel"]["first_frame_steps"], 8);
    let out = dir.path().join("clip.mp4");
    let made = ok(&["generate", "a red circle moving right", "--model", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--steps", "3", "--json"]);
    assert_eq!((made["settings"]["first_frame_steps"].as_u64(), made["settings"]["steps"].as_u64()), (Some(8), Some(3)));
    assert!(out.is_file());
    let off = ok(&["generate", "a red circle moving right", "--model", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--first-frame-steps", "0", "--json"]);
    assert_eq!(off["settings"]["first_frame_steps"], 0);
    assert_eq!(off["settings"]["sources"]["first_frame_steps"], "request");
    // A transformer that patches latent frames in pairs cannot hold the first alone: refused
    // before training, naming the key.
    let paired = write_config(dir.path(), "paired.toml", &std::fs::read_to_string(&cfg).unwrap().replace("num_layers = 2", "num_layers = 2\npatch_size = [2, 2, 2]"));
    let refused = reel(&["train", paired.to_str().unwrap(), "--out", dir.path().join("paired").to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("train.first_frame_share needs a temporal patch size of 1"), "{}", String::from_utf8_lossy(&refused.stderr));
    // A plain run's export has none.
    let plain = write_config(dir.path(), "plain.toml", &text);
    let plain_run = dir.path().join("plain");
    ok(&["train", plain.to_str().unwrap(), "--out", plain_run.to_str().unwrap()]);
    let plain_model = dir.path().join("plain-model");
    ok(&["train", "export", plain_run.to_str().unwrap(), plain_model.to_str().unwrap()]);
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(plain_model.join("model_index.json")).unwrap()).unwrap();
    assert_eq!(index["reel"]["first_frame_steps"], 0);
}
