//! The `reel` binary end to end: data on stdout, one-line errors with hints and exit code 2.

use std::path::Path;
use std::process::{Command, Output};

fn reel(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel")).args(args).current_dir(cwd).env("NO_COLOR", "1").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, exactly one `error:` line naming `needle`, optionally a `hint:` line.
fn assert_clean_error(o: &Output, needle: &str, want_hint: bool) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout on error");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{err}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
    assert_eq!(lines.iter().any(|l| l.starts_with("hint: ")), want_hint, "{err}");
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn help_is_useful_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["data", "synth", "--help"], &["video", "info", "--help"], &["bench", "video", "--help"]] {
        let o = reel(args, dir.path());
        assert!(o.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn synth_then_info_reports_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["data", "synth", "--out", "set", "--count", "2", "--frames", "9", "--fps", "24000/1001", "--width", "96", "--height", "64"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["clips"], 2);
    let o = reel(&["video", "info", "set/clip_000001.mp4", "--json"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["container"], "mp4");
    assert_eq!(info["codec"], "h264");
    assert_eq!((info["width"].as_u64(), info["height"].as_u64(), info["frames"].as_u64()), (Some(96), Some(64), Some(9)));
    assert_eq!(info["fps"], "24000/1001");
    let text = reel(&["video", "info", "set/clip_000000.mp4"], dir.path());
    assert!(String::from_utf8_lossy(&text.stdout).contains("size:      96x64"));
    let sheet = reel(&["video", "sheet", "set/clip_000000.mp4", "-o", "sheet.png"], dir.path());
    assert!(sheet.status.success(), "{}", stderr(&sheet));
    assert_eq!(reel_media::read_image(&dir.path().join("sheet.png")).unwrap().height(), 64 + 4);
}

#[test]
fn every_output_format_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["mp4", "webm", "avi", "gif", "png"] {
        let out = format!("set-{format}");
        let o = reel(&["data", "synth", "--out", &out, "--count", "1", "--frames", "5", "--format", format], dir.path());
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let name = if format == "png" { "clip_000000".to_string() } else { format!("clip_000000.{format}") };
        let info = reel(&["video", "info", &format!("{out}/{name}"), "--json"], dir.path());
        assert!(info.status.success(), "{format}: {}", stderr(&info));
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(v["frames"], 5, "{format}");
        let ffprobe = Command::new("ffprobe").args(["-v", "error", "-count_frames", "-show_streams"]).arg(dir.path().join(&out).join(&name)).output();
        match ffprobe {
            Ok(p) if format != "png" => {
                assert!(p.status.success(), "ffprobe rejects our {format}: {}", String::from_utf8_lossy(&p.stderr));
                assert!(String::from_utf8_lossy(&p.stdout).contains("nb_read_frames=5"), "{format}");
            }
            _ => {}
        }
    }
}

#[test]
fn scoring_scenes_reach_the_data_commands() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["data", "samples", "--count", "12", "--split", "holdout", "--scenes", "scoring"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 12);
    for l in &lines {
        let labels = &l["labels"];
        assert_eq!(labels["objects"].as_array().unwrap().len(), 1, "{l}");
        assert_eq!((labels["camera"].as_str(), labels["style"].as_str(), labels["mood"].as_str()), (Some("static"), Some("flat"), Some("neutral")), "{l}");
    }
    let o = reel(&["data", "samples", "--count", "1", "--scenes", "flat"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("all, scoring"), "{}", stderr(&o));
}

#[test]
fn unknown_format_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["data", "synth", "--out", "x", "--count", "1", "--format", "mkv"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("invalid value 'mkv'") && err.contains("mp4, webm, avi, gif, png"), "{err}");
    assert_eq!(entries(dir.path()), 0);
}

#[test]
fn odd_and_zero_sizes_are_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["data", "synth", "--out", "x", "--count", "1", "--width", "63"], dir.path());
    assert_clean_error(&o, "invalid frame size 63x64", true);
    let o = reel(&["data", "synth", "--out", "x", "--count", "1", "--height", "0"], dir.path());
    assert_clean_error(&o, "invalid frame size 64x0", true);
    let o = reel(&["bench", "video", "--out", "b.mp4", "--frames", "3", "--width", "17"], dir.path());
    assert_clean_error(&o, "must be even", true);
    assert_eq!(entries(dir.path()), 0);
}

#[test]
fn zero_frames_and_zero_clips_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["data", "synth", "--out", "x", "--count", "1", "--frames", "0"], dir.path());
    assert_clean_error(&o, "invalid frames 0", true);
    let o = reel(&["data", "synth", "--out", "x", "--count", "0"], dir.path());
    assert_clean_error(&o, "invalid count 0", true);
    let o = reel(&["bench", "video", "--out", "b.mp4", "--frames", "0", "--width", "16", "--height", "16"], dir.path());
    assert_clean_error(&o, "at least one frame", true);
    assert_eq!(entries(dir.path()), 0);
}

#[test]
fn unwritable_output_is_rejected_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), b"x").unwrap();
    // A path under a regular file cannot be created, even by root.
    let o = reel(&["data", "synth", "--out", "a-file/set", "--count", "1"], dir.path());
    assert_clean_error(&o, "cannot create output directory 'a-file/set'", true);
    let o = reel(&["bench", "video", "--out", "a-file/b.mp4", "--frames", "2", "--width", "16", "--height", "16"], dir.path());
    assert_clean_error(&o, "cannot write to 'a-file/b.mp4'", true);
    let o = reel(&["bench", "video", "--out", "no-such-dir/b.mp4", "--frames", "2", "--width", "16", "--height", "16"], dir.path());
    assert_clean_error(&o, "directory 'no-such-dir' does not exist", true);
    assert_eq!(entries(dir.path()), 1, "only the pre-existing file remains");
}

#[test]
fn missing_and_corrupt_inputs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["video", "info", "missing.mp4"], dir.path());
    assert_clean_error(&o, "input file 'missing.mp4' does not exist", true);
    std::fs::write(dir.path().join("fake.mp4"), b"\0\0\0\x20ftypisom but then nothing").unwrap();
    let o = reel(&["video", "info", "fake.mp4"], dir.path());
    assert_clean_error(&o, "is not a valid MP4 file", false);
    std::fs::write(dir.path().join("text.avi"), b"hello").unwrap();
    let o = reel(&["video", "info", "text.avi"], dir.path());
    assert_clean_error(&o, "not a video this build can read", true);
}

#[test]
fn bench_video_reports_memory() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["bench", "video", "--out", "b.avi", "--frames", "20", "--width", "64", "--height", "64"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["frames"], 20);
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert_eq!(entries(dir.path()), 0, "the bench file is removed unless --keep");
}

#[cfg(unix)]
fn signal(child: &std::process::Child, sig: &str) {
    Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
}

/// Starts a long write and waits until it has begun (its hidden temporary exists).
#[cfg(unix)]
fn start_long_write(dir: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["bench", "video", "--out", "long.avi", "--frames", "10000000", "--width", "64", "--height", "64"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if entries(dir) > 0 {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the write never started");
}

#[cfg(unix)]
#[test]
fn a_kill_never_leaves_a_file_under_the_requested_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_long_write(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, "-KILL");
    child.wait().unwrap();
    assert!(!dir.path().join("long.avi").exists());
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with(".long.avi.reel-tmp-")), "{names:?}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_long_write(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(entries(dir.path()), 0, "an interrupted write removes its temporary");
}

fn wan_fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reel-models/tests/fixtures/wan_transformer")
}

#[test]
fn model_info_lists_components_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let o = reel(&["model", "info", wan_fixtures().join("tiny_a").to_str().unwrap(), "--json"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["components"][0];
    assert_eq!(c["name"], "transformer");
    assert_eq!(c["class_name"], "WanTransformer3DModel");
    assert!(c["parameters"].as_u64().unwrap() > 10_000);
    assert_eq!(c["config"]["num_attention_heads"], 3);
}

#[test]
fn model_run_reproduces_the_reference_output() {
    let dir = tempfile::tempdir().unwrap();
    let f = wan_fixtures();
    let o = reel(
        &["model", "run", f.join("tiny_b").to_str().unwrap(), "--component", "transformer", "--inputs", f.join("tiny_b.io.safetensors").to_str().unwrap(), "--output", "out.safetensors"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dev = candle_core::Device::Cpu;
    let got = candle_core::safetensors::load(dir.path().join("out.safetensors"), &dev).unwrap();
    let want = candle_core::safetensors::load(f.join("tiny_b.io.safetensors"), &dev).unwrap();
    let diff = (&got["sample"] - &want["sample"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn model_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let f = wan_fixtures();
    let model = f.join("tiny_a");
    let model = model.to_str().unwrap();
    // Inputs lacking a tensor.
    let dev = candle_core::Device::Cpu;
    let only = [("hidden_states".to_string(), candle_core::Tensor::zeros((1, 4, 1, 2, 2), candle_core::DType::F32, &dev).unwrap())].into_iter().collect::<std::collections::HashMap<_, _>>();
    candle_core::safetensors::save(&only, dir.path().join("in.safetensors")).unwrap();
    let o = reel(&["model", "run", model, "--component", "transformer", "--inputs", "in.safetensors", "--output", "o.safetensors"], dir.path());
    assert_clean_error(&o, "has no tensor 'timestep'", false);
    let o = reel(&["model", "run", model, "--component", "text-encoder", "--inputs", "in.safetensors", "--output", "o.safetensors"], dir.path());
    assert_clean_error(&o, "has no text_encoder", true);
    let o = reel(&["model", "info", "no-such-model"], dir.path());
    assert_clean_error(&o, "no-such-model", false);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("empty/config.json"), "{}").unwrap();
    let o = reel(&["model", "info", "empty"], dir.path());
    assert_clean_error(&o, "holds no weights", true);
    assert!(!dir.path().join("o.safetensors").exists());
}

#[test]
fn model_run_vae_decode_reproduces_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reel-models/tests/fixtures/wan_vae");
    let o = reel(
        &["model", "run", f.join("tiny_a").to_str().unwrap(), "--component", "vae-decode", "--inputs", f.join("tiny_a.io.safetensors").to_str().unwrap(), "--output", "out.safetensors"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dev = candle_core::Device::Cpu;
    let got = candle_core::safetensors::load(dir.path().join("out.safetensors"), &dev).unwrap();
    let want = candle_core::safetensors::load(f.join("tiny_a.io.safetensors"), &dev).unwrap();
    let diff = (&got["sample"] - &want["decoded"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-3, "{diff}");
}

#[test]
fn model_run_text_encoder_reproduces_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reel-models/tests/fixtures/text_encoders");
    let o = reel(
        &["model", "run", f.join("umt5_tiny").to_str().unwrap(), "--component", "text-encoder", "--inputs", f.join("umt5_tiny.io.safetensors").to_str().unwrap(), "--output", "out.safetensors"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dev = candle_core::Device::Cpu;
    let got = candle_core::safetensors::load(dir.path().join("out.safetensors"), &dev).unwrap();
    let want = candle_core::safetensors::load(f.join("umt5_tiny.io.safetensors"), &dev).unwrap();
    let diff = (&got["last_hidden_state"] - &want["last_hidden_state"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn model_run_that_cannot_put_its_output_in_place_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = wan_fixtures();
    // The output name is taken by a non-empty directory: the outputs are written to a
    // temporary first, and the rename fails; the temporary must go.
    std::fs::create_dir(dir.path().join("out.safetensors")).unwrap();
    std::fs::write(dir.path().join("out.safetensors/keep"), b"x").unwrap();
    let o = reel(
        &["model", "run", f.join("tiny_a").to_str().unwrap(), "--component", "transformer", "--inputs", f.join("tiny_a.io.safetensors").to_str().unwrap(), "--output", "out.safetensors"],
        dir.path(),
    );
    assert_clean_error(&o, "writing 'out.safetensors'", false);
    assert_eq!(entries(dir.path()), 1, "only the directory that was in the way");
}
