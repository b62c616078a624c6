//! Training the Wan VAE: the gradient of the L1 reconstruction loss with respect to every
//! parameter matches PyTorch's (diffusers' `AutoencoderKLWan`, `tools/reference/wan_vae_grad.py`),
//! and an optimizer's update to a convolution changes what the model computes.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use reel_models::wan::{AutoencoderKLWan, WanVaeConfig};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan_vae_grad")
}

/// A trainable VAE (its parameters in a VarMap) holding the fixture's weights.
fn trainable_vae() -> (VarMap, WanVaeConfig) {
    let dev = Device::Cpu;
    let cfg: WanVaeConfig = serde_json::from_str(&std::fs::read_to_string(fixture().join("vae/config.json")).unwrap()).unwrap();
    let map = VarMap::new();
    AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let weights = candle_core::safetensors::load(fixture().join("vae/diffusion_pytorch_model.safetensors"), &dev).unwrap();
    for (name, var) in map.data().lock().unwrap().iter() {
        var.set(weights.get(name).unwrap_or_else(|| panic!("no weight {name}"))).unwrap();
    }
    (map, cfg)
}

#[test]
fn vae_gradients_match_pytorch() {
    let dev = Device::Cpu;
    let (map, cfg) = trainable_vae();
    let vae = AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let io = candle_core::safetensors::load(fixture().join("grads.safetensors"), &dev).unwrap();
    let x = &io["sample"];
    let decoded = vae.decode_unclamped(&vae.encode(x).unwrap().mean).unwrap();
    let loss = (decoded - x).unwrap().abs().unwrap().mean_all().unwrap();
    let want_loss = io["loss"].to_vec1::<f32>().unwrap()[0];
    assert!((loss.to_scalar::<f32>().unwrap() - want_loss).abs() < 1e-5 * want_loss.abs().max(1.0));
    let grads = loss.backward().unwrap();
    let mut worst = (0f32, String::new());
    for (name, var) in map.data().lock().unwrap().iter() {
        let want = &io[&format!("grad.{name}")];
        let got = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale;
        if diff > worst.0 {
            worst = (diff, name.clone());
        }
    }
    eprintln!("VAE gradient parity: worst relative difference {:.2e} ({})", worst.0, worst.1);
    assert!(worst.0 < 1e-3, "gradient of {} differs by {} of its scale", worst.1, worst.0);
}

#[test]
fn an_update_to_a_convolution_changes_the_output() {
    let dev = Device::Cpu;
    let (map, cfg) = trainable_vae();
    let vae = AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let x = Tensor::randn(0f32, 0.5, (1, 3, 1, 16, 16), &dev).unwrap();
    let before = vae.decode_unclamped(&vae.encode(&x).unwrap().mean).unwrap();
    // What an optimizer does: change a convolution's Var in place, keep the model.
    let data = map.data().lock().unwrap();
    let var = data.get("decoder.conv_out.weight").unwrap();
    var.set(&(var.as_tensor() * 3.0).unwrap()).unwrap();
    drop(data);
    let after = vae.decode_unclamped(&vae.encode(&x).unwrap().mean).unwrap();
    let change = (after - before).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(change > 1e-4, "the forward pass ignored the updated weight (change {change})");
}
