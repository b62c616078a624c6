//! I3D against the PyTorch reference of `tools/reference/i3d.py`: a narrow random network
//! (an eighth of every width) with the PyTorch port's parameter names, on a fixed 16-frame
//! 224×224 clip.

use std::path::Path;

use candle_core::{Device, Tensor};
use reel_eval::features::i3d::I3d;
use reel_eval::features::{FeatureNet, I3dLayer};

fn fixture() -> (Vec<f32>, Vec<f32>) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/i3d.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    (list("logits"), list("pooled"))
}

fn clip_input() -> Tensor {
    let mut data = Vec::with_capacity(3 * 16 * 224 * 224);
    for c in 0..3 {
        for t in 0..16 {
            for h in 0..224 {
                for w in 0..224 {
                    data.push(((0.1 * (c as f64 + 1.0) * h as f64 + 0.07 * w as f64 - 0.3 * t as f64).sin() * 0.9) as f32);
                }
            }
        }
    }
    Tensor::from_vec(data, (1, 3, 16, 224, 224), &Device::Cpu).unwrap()
}

fn weights() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/i3d_tiny.safetensors")
}

fn max_rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn i3d_matches_pytorch() {
    let net = I3d::load(&weights()).unwrap();
    let out = net.forward(&clip_input()).unwrap();
    let (logits, pooled) = fixture();
    let got_logits = out.logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got_pooled = out.pooled.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (dl, dp) = (max_rel_diff(&got_logits, &logits), max_rel_diff(&got_pooled, &pooled));
    eprintln!("I3D parity: logits {dl:.2e}, pooled {dp:.2e} (relative to the largest value)");
    assert!(dl < 1e-4 && dp < 1e-4, "logits differ by {dl}, pooled features by {dp}");
}

#[test]
fn i3d_weights_load_as_a_feature_network_and_bad_files_are_named() {
    let net = FeatureNet::load(&weights(), I3dLayer::Pool).unwrap();
    assert_eq!(net.input(), (16, 224));
    let dir = tempfile::tempdir().unwrap();
    // Not safetensors at all.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not weights").unwrap();
    let err = FeatureNet::load(&junk, I3dLayer::Logits).err().unwrap().to_string();
    assert!(err.contains("junk.safetensors") && err.contains("safetensors"), "{err}");
    // Safetensors, but not an I3D.
    let other = dir.path().join("other.safetensors");
    candle_core::safetensors::save(&[("w".to_string(), Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap())].into_iter().collect(), &other).unwrap();
    let err = FeatureNet::load(&other, I3dLayer::Logits).err().unwrap().to_string();
    assert!(err.contains("not an I3D network"), "{err}");
    // An I3D missing one tensor: named.
    let mut tensors = candle_core::safetensors::load(weights(), &Device::Cpu).unwrap();
    tensors.remove("Mixed_4d.b2b.bn.running_var");
    let cut = dir.path().join("cut.safetensors");
    candle_core::safetensors::save(&tensors, &cut).unwrap();
    let err = FeatureNet::load(&cut, I3dLayer::Logits).err().unwrap().to_string();
    assert!(err.contains("Mixed_4d.b2b"), "{err}");
    assert!(FeatureNet::load(&dir.path().join("missing.safetensors"), I3dLayer::Logits).err().unwrap().to_string().contains("no such file"));
}
