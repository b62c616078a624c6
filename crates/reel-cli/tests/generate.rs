//! `reel generate`: prompts and JSON requests through the binary, on a small model trained
//! for a few steps (the smoke config) and exported.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn reel(args: &[&str]) -> Output {
    reel_with(args, &[], None)
}

fn reel_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reel"));
    cmd.args(args).arg("-q").envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("reel runs");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or(serde_json::Value::Null)
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A model trained 2 steps from the smoke config and exported (built once per test binary run).
fn model(tmp: &Path) -> PathBuf {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml");
    let run = tmp.join("run");
    ok(&reel(&["train", smoke.to_str().unwrap(), "--out", run.to_str().unwrap(), "--max-steps", "2"]));
    let dir = tmp.join("model");
    ok(&reel(&["train", "export", run.to_str().unwrap(), dir.to_str().unwrap()]));
    dir
}

/// A temporary folder with a model and an empty `out/`.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let model = model(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    (tmp, model, out)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn prompts_and_requests_make_videos_with_sidecars() {
    let (tmp, model, out) = setup();
    let m = model.to_str().unwrap();

    // Plain text: the duration, rate and style are read from it.
    let a = out.join("a.mp4");
    let v = ok(&reel(&["generate", "a red circle moving right, 1 second at 16 fps, pixel-art", "--model", m, "-o", a.to_str().unwrap(), "--steps", "3", "--json"]));
    assert_eq!(v["settings"]["frames"], 17, "{v}");
    assert_eq!(v["settings"]["fps"], 16.0);
    assert_eq!(v["settings"]["style"], "pixel");
    assert_eq!(v["settings"]["prompt"], "pixel-art video of a red circle moving right");
    for stage in ["text", "denoise", "decode", "encode", "total"] {
        assert!(v["timings"][stage].as_f64().unwrap() >= 0.0, "{stage}");
    }
    let (info, frames) = reel_media::read_video(&a).unwrap();
    assert_eq!((frames.len(), info.width, info.height), (17, 32, 32), "the smoke model's default size");
    let sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("a.json")).unwrap()).unwrap();
    assert_eq!(sidecar["request"]["prompt"], "a red circle moving right, 1 second at 16 fps, pixel-art");
    assert_eq!(sidecar["settings"]["sources"]["fps"], "text");

    // The same request from a file, stdin, and with one thread: the same frames.
    let request = serde_json::json!({"prompt": "a red circle moving right, 1 second at 16 fps, pixel-art", "steps": 3, "model": m, "format": "gif"});
    let req_path = tmp.path().join("req.json");
    std::fs::write(&req_path, request.to_string()).unwrap();
    let b = out.join("b.gif");
    ok(&reel(&["generate", "--request", req_path.to_str().unwrap(), "-o", b.to_str().unwrap()]));
    let c = out.join("c.gif");
    ok(&reel_with(&["generate", "--request", "-", "-o", c.to_str().unwrap()], &[("RAYON_NUM_THREADS", "1")], Some(&request.to_string())));
    let (_, fb) = reel_media::read_video(&b).unwrap();
    let (_, fc) = reel_media::read_video(&c).unwrap();
    assert_eq!(fb.len(), 17);
    assert!(fb == fc, "same seed, one thread or two: the same video");
    // Another seed: another video.
    let d = out.join("d.gif");
    ok(&reel(&["generate", "--request", req_path.to_str().unwrap(), "-o", d.to_str().unwrap(), "--seed", "5"]));
    assert!(reel_media::read_video(&d).unwrap().1 != fb);

    // Paraphrases outside the caption vocabulary reach the model as caption words.
    let p = out.join("p.mp4");
    let v = ok(&reel(&["generate", "a crimson ball drifting to the right", "--model", m, "-o", p.to_str().unwrap(), "--steps", "1", "--json"]));
    assert_eq!(v["settings"]["prompt"], "video of a red ball moving to the right", "{v}");
    assert!(v["settings"]["notes"].to_string().contains("crimson → red"), "{v}");

    // A folder of PNG frames, named without an extension.
    let frames = out.join("frames");
    ok(&reel(&["generate", "a red circle", "--model", m, "--steps", "1", "--format", "png", "-o", frames.to_str().unwrap()]));
    assert_eq!(reel_media::read_video(&frames).unwrap().1.len(), 9, "the smoke model's default frame count");
    assert!(out.join("frames.json").is_file());

    // JSON fields win over the text.
    let e = out.join("e.mp4");
    let req = serde_json::json!({"prompt": "a blue square at 16 fps, outlined", "fps": 8, "style": "flat", "frames": 5, "steps": 2, "model": m, "guidance": 1.0});
    let v = ok(&reel_with(&["generate", "--request", "-", "-o", e.to_str().unwrap(), "--json"], &[], Some(&req.to_string())));
    assert_eq!((v["settings"]["fps"].as_f64(), v["settings"]["style"].as_str(), v["settings"]["frames"].as_u64()), (Some(8.0), Some("flat"), Some(5)));
    assert_eq!(reel_media::read_video(&e).unwrap().1.len(), 5);
}

/// `reel train planner` adds a planner to a model; its requests then start from the planned
/// layout by default (recorded in the sidecar), and `--layout-strength 0` goes without.
#[test]
fn a_planner_is_trained_into_a_model_and_used_by_default() {
    let (_tmp, model, out) = setup();
    let m = model.to_str().unwrap();
    let report = ok(&reel(&["train", "planner", m, "--scenes", "400", "--steps", "60"]));
    assert!(report["check"]["objects"].as_u64().unwrap() > 0 && report["loss"].as_f64().unwrap() < report["first_loss"].as_f64().unwrap(), "{report}");
    assert!(model.join("planner/model.safetensors").is_file());
    let v = ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("a.mp4").to_str().unwrap(), "--json"]));
    assert_eq!(v["settings"]["layout_strength"], 0.8, "{v}");
    let sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("a.json")).unwrap()).unwrap();
    assert_eq!(sidecar["layout"]["objects"].as_array().map(Vec::len), Some(1), "{sidecar}");
    ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("b.mp4").to_str().unwrap(), "--layout-strength", "0"]));
    let sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("b.json")).unwrap()).unwrap();
    assert!(sidecar["layout"].is_null(), "{sidecar}");
    // Trained again with a default strength, the model takes it; an impossible one is refused
    // and changes nothing.
    let report = ok(&reel(&["train", "planner", m, "--scenes", "400", "--steps", "20", "--silhouette", "8", "--layout-strength", "0.6"]));
    assert!(report["check"]["shape_correct"].as_f64().is_some(), "{report}");
    let planner_config = std::fs::read_to_string(model.join("planner/config.json")).unwrap();
    assert!(planner_config.contains("\"silhouette_size\": 8"), "{planner_config}");
    let v = ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("d.mp4").to_str().unwrap(), "--json"]));
    assert_eq!(v["settings"]["layout_strength"], 0.6, "{v}");
    assert_eq!((v["settings"]["layout_first_frame"].as_bool(), v["settings"]["layout_guidance"].as_f64()), (Some(false), Some(0.0)), "{v}");
    // The first frame first and a pull toward the layout, as the model's defaults; the
    // request may still turn them off.
    ok(&reel(&["train", "planner", m, "--scenes", "400", "--steps", "20", "--silhouette", "8", "--layout-strength", "0.6", "--layout-first-frame", "true", "--layout-guidance", "0.3", "--layout-erosion", "1.5", "--layout-refine", "1"]));
    let v = ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("f.mp4").to_str().unwrap(), "--json"]));
    assert_eq!((v["settings"]["layout_first_frame"].as_bool(), v["settings"]["layout_guidance"].as_f64()), (Some(true), Some(0.3)), "{v}");
    assert_eq!((v["settings"]["layout_erosion"].as_f64(), v["settings"]["sources"]["layout_erosion"].as_str()), (Some(1.5), Some("default")), "{v}");
    assert_eq!((v["settings"]["layout_refine"].as_u64(), v["settings"]["sources"]["layout_refine"].as_str()), (Some(1), Some("default")), "{v}");
    assert_eq!(reel_media::read_video(&out.join("f.mp4")).unwrap().1.len(), 9);
    let v = ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("g.mp4").to_str().unwrap(), "--json", "--layout-first-frame", "false", "--layout-guidance", "0", "--layout-erosion", "0", "--layout-refine", "0"]));
    assert_eq!((v["settings"]["layout_first_frame"].as_bool(), v["settings"]["sources"]["layout_guidance"].as_str()), (Some(false), Some("request")), "{v}");
    assert_eq!((v["settings"]["layout_erosion"].as_f64(), v["settings"]["sources"]["layout_erosion"].as_str()), (Some(0.0), Some("request")), "{v}");
    assert_eq!((v["settings"]["layout_refine"].as_u64(), v["settings"]["sources"]["layout_refine"].as_str()), (Some(0), Some("request")), "{v}");
    // The erosion reaches the painted layout: the same request, objects painted wider, another clip.
    ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("g4.mp4").to_str().unwrap(), "--layout-first-frame", "false", "--layout-guidance", "0", "--layout-erosion", "4"]));
    let frames = |name: &str| reel_media::read_video(&out.join(name)).unwrap().1;
    assert_ne!(frames("g.mp4"), frames("g4.mp4"));
    // So does the refinement: outlines corrected through the VAE, another clip.
    ok(&reel(&["generate", "a red circle moving right", "--model", m, "-o", out.join("g-refined.mp4").to_str().unwrap(), "--layout-first-frame", "false", "--layout-guidance", "0", "--layout-erosion", "0", "--layout-refine", "2"]));
    assert_ne!(frames("g.mp4"), frames("g-refined.mp4"));
    let index = std::fs::read_to_string(model.join("model_index.json")).unwrap();
    let stderr = err(&reel(&["train", "planner", m, "--steps", "1", "--layout-strength", "1.5"]));
    assert!(stderr.contains("outside 0-1"), "{stderr}");
    let stderr = err(&reel(&["train", "planner", m, "--steps", "1", "--layout-guidance", "1.5"]));
    assert!(stderr.contains("layout guidance 1.5 is outside 0-1"), "{stderr}");
    let stderr = err(&reel(&["train", "planner", m, "--steps", "1", "--layout-erosion", "9"]));
    assert!(stderr.contains("layout erosion 9 is outside 0-8"), "{stderr}");
    let stderr = err(&reel(&["train", "planner", m, "--steps", "1", "--layout-refine", "5"]));
    assert!(stderr.contains("layout refine 5 is outside 0-4"), "{stderr}");
    assert_eq!(std::fs::read_to_string(model.join("model_index.json")).unwrap(), index);
    assert_eq!(std::fs::read_to_string(model.join("planner/config.json")).unwrap(), planner_config);
    // A model index with a default out of range is refused at load, naming the key.
    std::fs::write(model.join("model_index.json"), index.replace("\"layout_guidance\": 0.3", "\"layout_guidance\": 1.5")).unwrap();
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", out.join("h.mp4").to_str().unwrap()]));
    assert!(stderr.contains("layout_guidance 1.5 is outside 0–1"), "{stderr}");
    assert!(!out.join("h.mp4").exists());
    std::fs::write(model.join("model_index.json"), index.replace("\"layout_erosion\": 1.5", "\"layout_erosion\": 9.0")).unwrap();
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", out.join("h.mp4").to_str().unwrap()]));
    assert!(stderr.contains("layout_erosion 9 is outside 0–8"), "{stderr}");
    assert!(!out.join("h.mp4").exists());
    std::fs::write(model.join("model_index.json"), index.replace("\"layout_refine\": 1", "\"layout_refine\": 7")).unwrap();
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", out.join("h.mp4").to_str().unwrap()]));
    assert!(stderr.contains("layout_refine 7 is outside 0–4"), "{stderr}");
    assert!(!out.join("h.mp4").exists());
    std::fs::write(model.join("model_index.json"), &index).unwrap();
    // A planner trained for another vocabulary is refused at load, with the fix.
    let tok_path = model.join("tokenizer/tokenizer.json");
    let mut tok: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tok_path).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let extra = vocab.len();
    vocab.insert("zebra".into(), extra.into());
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", out.join("c.mp4").to_str().unwrap()]));
    assert!(stderr.contains("does not match the tokenizer") && stderr.contains("reel train planner"), "{stderr}");
    // A folder that is no model is refused, and left as it was.
    let stderr = err(&reel(&["train", "planner", out.to_str().unwrap()]));
    assert!(stderr.contains("no tokenizer/tokenizer.json"), "{stderr}");
}

#[test]
fn bad_requests_are_refused_before_any_work_and_write_nothing() {
    let (_tmp, model, out) = setup();
    let m = model.to_str().unwrap();
    let o = out.join("x.mp4");
    let o = o.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["generate", "a red circle", "--frames", "18"], None, "nearest: 17 or 21"),
        (vec!["generate", "a red circle", "--width", "40"], None, "multiples of 16"),
        (vec!["generate", "a red circle", "--style", "watercolour"], None, "flat, outline, pixel"),
        (vec!["generate", "a red circle", "--format", "mkv"], None, "mp4, webm, avi, gif, png"),
        (vec!["generate", "a red circle", "--fps", "500"], None, "1 to 120"),
        (vec!["generate", "a red circle", "--steps", "0"], None, "steps"),
        (vec!["generate", "a red circle", "--scheduler", "ddim"], None, "euler"),
        (vec!["generate", "a red circle", "--layout-strength", "2"], None, "0 (no layout, from noise) to 1"),
        (vec!["generate", "a red circle", "--layout-strength", "0.5"], None, "reel train planner"),
        (vec!["generate", "a red circle", "--layout-guidance", "2"], None, "0 (no pull toward the layout) to 1"),
        (vec!["generate", "a red circle", "--layout-erosion=-0.1"], None, "0 (objects painted as planned) to 8 pixels"),
        (vec!["generate", "a red circle", "--layout-first-frame", "true"], None, "layout_first_frame: needs a layout"),
        (vec!["generate", "a red circle", "--layout-refine", "5"], None, "0 (outlines painted as planned) to 4"),
        (vec!["generate", "a red circle, 9999 seconds"], None, "duration"),
        (vec!["generate", "--request", "-"], Some(r#"{"prompt": "x", "colour": "red"}"#), "unknown field `colour`"),
        (vec!["generate", "--request", "-"], Some("{not json"), "not a valid request"),
        (vec!["generate", "--request", "-"], Some(r#"{"prompt": "x", "frames": 9, "duration": 2}"#), "both frames and duration"),
        (vec!["generate"], None, "nothing to generate"),
        (vec!["generate", "a red circle", "--model", "/nonexistent/model"], None, "not a model"),
        (vec!["generate", "a red circle", "-o", "/nonexistent/dir/x.mp4"], None, "does not exist"),
    ];
    for (args, stdin, expected) in cases {
        let mut args = args.clone();
        if !args.contains(&"--model") {
            args.extend(["--model", m]);
        }
        if !args.contains(&"-o") {
            args.extend(["-o", o]);
        }
        let stderr = err(&reel_with(&args, &[], stdin));
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in: {stderr}");
    }
    // An output extension that is no format, and a format that disagrees with it.
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", out.join("x.mkv").to_str().unwrap()]));
    assert!(stderr.contains("mkv"), "{stderr}");
    let stderr = err(&reel(&["generate", "a red circle", "--model", m, "-o", o, "--format", "gif"]));
    assert!(stderr.contains("disagrees"), "{stderr}");
    assert!(files_in(&out).is_empty(), "nothing written: {:?}", files_in(&out));
}

#[test]
fn adherence_generates_from_held_out_prompts_or_a_prompt_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model(tmp.path());
    let m = model.to_str().unwrap();
    let out = tmp.path().join("eval");
    let v = ok(&reel(&["eval", "adherence", "--model", m, "--samples", "2", "--steps", "2", "--out", out.to_str().unwrap(), "--json"]));
    assert_eq!(v["n"], 2, "{v}");
    assert!(v["accuracy"]["color"].as_f64().is_some());
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = manifest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["seed"].as_u64(), lines[1]["seed"].as_u64()), (Some(0), Some(1)));
    // Held-out prompts: every object's triple is held out of training.
    for line in &lines {
        let labels: reel_data::SceneLabels = serde_json::from_value(line["labels"].clone()).unwrap();
        assert!(labels.objects.iter().all(|o| o.is_held_out()), "{line}");
        assert!(out.join(line["file"].as_str().unwrap()).is_file());
    }
    assert!(out.join("evaluation.json").is_file());

    // Prompts from `reel data samples`.
    let samples = reel(&["data", "samples", "--count", "1", "--split", "train"]);
    let prompts = tmp.path().join("prompts.jsonl");
    std::fs::write(&prompts, &samples.stdout).unwrap();
    let out2 = tmp.path().join("eval2");
    let v = ok(&reel(&["eval", "adherence", "--model", m, "--prompts", prompts.to_str().unwrap(), "--steps", "1", "--out", out2.to_str().unwrap(), "--json"]));
    assert_eq!(v["n"], 1);
    // A bad prompt file is named; nothing is generated.
    std::fs::write(&prompts, "{\"caption\": 3}\n").unwrap();
    let stderr = err(&reel(&["eval", "adherence", "--model", m, "--prompts", prompts.to_str().unwrap(), "--out", tmp.path().join("eval3").to_str().unwrap()]));
    assert!(stderr.contains("line 1"), "{stderr}");
    assert!(!tmp.path().join("eval3").exists());
}
