//! `reel eval`: adherence on a synthesized set, reports, comparisons, and bad input.

use std::path::Path;
use std::process::{Command, Output};

fn reel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel")).args(args).arg("-q").output().expect("reel runs")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn synth(dir: &Path, count: &str) {
    ok(&reel(&["data", "synth", "--out", dir.to_str().unwrap(), "--count", count, "--split", "all", "--format", "mp4"]));
}

#[test]
fn adherence_report_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, "6");
    let manifest = data.join("manifest.jsonl");
    let eval_dir = tmp.path().join("eval");
    let out = ok(&reel(&["eval", "adherence", "--manifest", manifest.to_str().unwrap(), "--out", eval_dir.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["n"], 6);
    for key in ["color", "shape", "motion"] {
        let a = v["accuracy"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{key}: {a}");
    }
    // Ground-truth clips: colours are read right even after MP4 encoding.
    assert!(v["accuracy"]["color"].as_f64().unwrap() >= 0.9, "{v}");
    assert!(v["all_correct"].as_f64().unwrap() <= 1.0);
    assert!(eval_dir.join("evaluation.json").exists());

    let report = tmp.path().join("report");
    ok(&reel(&["eval", "report", eval_dir.to_str().unwrap(), "--out", report.to_str().unwrap()]));
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("data:image/gif;base64,") && html.contains("data:image/png;base64,"), "clips are inlined");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "self-contained");
    assert!(html.contains("<svg") && html.contains("Confusion matrices"));
    assert_eq!(html.matches("class=\"anim\"").count(), 6);
    assert!(report.join("report.md").exists() && report.join("sheets/clip-005.png").exists());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json[0]["adherence"]["n"], 6);

    // A report straight from a manifest evaluates it first.
    ok(&reel(&["eval", "report", manifest.to_str().unwrap(), "--out", tmp.path().join("r2").to_str().unwrap(), "--max-clips", "2"]));
    assert_eq!(std::fs::read_to_string(tmp.path().join("r2/report.html")).unwrap().matches("class=\"anim\"").count(), 2);

    // The same evaluation against itself: two columns, zero differences.
    let cmp = tmp.path().join("cmp");
    ok(&reel(&["eval", "compare", eval_dir.to_str().unwrap(), manifest.to_str().unwrap(), "--out", cmp.to_str().unwrap()]));
    let html = std::fs::read_to_string(cmp.join("report.html")).unwrap();
    assert!(html.contains("difference") && html.contains("+0.000"));
    assert_eq!(html.matches("class=\"anim\"").count(), 12);

    // Different prompts cannot be compared.
    let other = tmp.path().join("other");
    ok(&reel(&["data", "synth", "--out", other.to_str().unwrap(), "--count", "6", "--split", "all", "--seed", "9"]));
    let bad = reel(&["eval", "compare", eval_dir.to_str().unwrap(), other.join("manifest.jsonl").to_str().unwrap(), "--out", tmp.path().join("cmp2").to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not made from the same prompts") && err.contains("hint:"), "{err}");
    assert!(!tmp.path().join("cmp2").exists(), "nothing written");
}

#[test]
fn bad_input_is_named_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synth(&data, "3");
    // A corrupt clip: the error names it, and no evaluation is saved.
    let clips: Vec<_> = std::fs::read_dir(&data).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "mp4")).collect();
    std::fs::write(&clips[1], b"not a video").unwrap();
    let out_dir = tmp.path().join("eval");
    let bad = reel(&["eval", "adherence", "--manifest", data.join("manifest.jsonl").to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains(clips[1].file_name().unwrap().to_str().unwrap()) && err.contains("hint:"), "{err}");
    assert!(!out_dir.join("evaluation.json").exists());

    // A malformed manifest line is named by number.
    let manifest = tmp.path().join("m.jsonl");
    std::fs::write(&manifest, "{\"file\": \"a.mp4\", \"caption\": \"x\"}\n").unwrap();
    let bad = reel(&["eval", "adherence", "--manifest", manifest.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("line 1") && err.contains("labels"), "{err}");

    // Something that is no evaluation.
    let bad = reel(&["eval", "report", tmp.path().join("missing").to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("holds no evaluation"));
}

#[test]
fn robustness_table() {
    let out = ok(&reel(&["eval", "robustness", "--count", "4", "--split", "all", "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let conditions = v.as_array().unwrap();
    assert_eq!(conditions[0]["name"], "clean");
    assert!(conditions.len() >= 10);
    assert_eq!(conditions[0]["summary"]["n"], 4);
}

fn synth_seeded(dir: &Path, count: &str, seed: &str) {
    ok(&reel(&["data", "synth", "--out", dir.to_str().unwrap(), "--count", count, "--split", "train", "--seed", seed, "--format", "mp4"]));
}

#[test]
fn fvd_with_the_bundled_network_and_a_reference_in_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    synth_seeded(&a, "12", "0");
    synth_seeded(&b, "12", "1");
    let fvd = |x: &Path, y: &Path| -> serde_json::Value {
        serde_json::from_str(ok(&reel(&["eval", "fvd", x.to_str().unwrap(), y.to_str().unwrap(), "--json"])).trim()).unwrap()
    };
    let same = fvd(&a, &a.join("manifest.jsonl"));
    assert_eq!(same["network"], "shapes-features-v1");
    assert_eq!(same["n"], serde_json::json!([12, 12]));
    assert!(same["frechet"].as_f64().unwrap().abs() < 1e-3, "identical sets: {same}");
    let other = fvd(&a, &b);
    assert!(other["frechet"].as_f64().unwrap() > 1e-2, "two draws of the world differ a little: {other}");

    // A reference set puts the distance into the evaluation, its JSON and its report.
    let eval_dir = tmp.path().join("eval");
    let out = ok(&reel(&[
        "eval", "adherence", "--manifest", b.join("manifest.jsonl").to_str().unwrap(),
        "--reference", a.to_str().unwrap(), "--out", eval_dir.to_str().unwrap(), "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!((v["frechet"]["frechet"].as_f64().unwrap() - other["frechet"].as_f64().unwrap()).abs() < 1e-6, "{v}");
    let report = tmp.path().join("report");
    ok(&reel(&["eval", "report", eval_dir.to_str().unwrap(), "--out", report.to_str().unwrap()]));
    assert!(std::fs::read_to_string(report.join("report.md")).unwrap().contains("Fréchet distance to"));

    // Bad sets and networks are named, before any work.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = reel(&["eval", "fvd", a.to_str().unwrap(), empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no clips"));
    let out = reel(&["eval", "fvd", a.to_str().unwrap(), b.to_str().unwrap(), "--features", tmp.path().join("nope.safetensors").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.safetensors"));
    let out = reel(&["eval", "adherence", "--manifest", b.join("manifest.jsonl").to_str().unwrap(), "--reference", empty.to_str().unwrap(), "--out", tmp.path().join("e2").to_str().unwrap()]);
    assert!(!out.status.success() && !tmp.path().join("e2").exists());
}

#[test]
fn a_feature_network_trains_and_is_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let out = ok(&reel(&["eval", "features", "train", "--out", net.to_str().unwrap(), "--steps", "3", "--batch", "2", "--eval-clips", "4"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["first_loss"].as_f64().unwrap().is_finite() && v["holdout_accuracy"]["color"].is_number(), "{v}");
    for file in ["config.json", "model.safetensors", "training.json"] {
        assert!(net.join(file).exists(), "{file}");
    }
    // An existing output is refused and left alone.
    let out = reel(&["eval", "features", "train", "--out", net.to_str().unwrap(), "--steps", "1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // The folder is a feature network for `reel eval fvd`.
    let a = tmp.path().join("a");
    synth_seeded(&a, "3", "0");
    let out = ok(&reel(&["eval", "fvd", a.to_str().unwrap(), a.to_str().unwrap(), "--features", net.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["network"], "net");
    assert_eq!(v["dim"], 128);
}
