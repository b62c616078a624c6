//! The Wan VAE against diffusers (fixtures from `tools/reference/wan_vae.py`):
//! encode and decode within 1e-3 (absolute; pixels are in [−1, 1]).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reel_models::wan::Tiling;

fn fixtures() -> PathBuf {
    std::env::var_os("REEL_VAE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan_vae"))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn load(name: &str) -> (reel_models::wan::AutoencoderKLWan, std::collections::HashMap<String, Tensor>) {
    let io = candle_core::safetensors::load(fixtures().join(format!("{name}.io.safetensors")), &Device::Cpu).unwrap();
    let vae = reel_models::load_wan_vae(&fixtures().join(name), DType::F32, &Device::Cpu).unwrap();
    (vae, io)
}

#[test]
fn encode_and_decode_match_diffusers() {
    for name in ["tiny_a", "tiny_b"] {
        let (vae, io) = load(name);
        let posterior = vae.encode(&io["sample"]).unwrap();
        let (dm, dl) = (max_diff(&posterior.mean, &io["mean"]), max_diff(&posterior.logvar, &io["logvar"]));
        let decoded = vae.decode(&io["latents"]).unwrap();
        let dd = max_diff(&decoded, &io["decoded"]);
        eprintln!("{name}: mean {dm:e}, logvar {dl:e}, decoded {dd:e}");
        assert!(dm <= 1e-3 && dl <= 1e-3 && dd <= 1e-3, "{name}");
    }
}

#[test]
fn tiled_encode_and_decode_match_diffusers() {
    let (vae, io) = load("tiny_b");
    let vae = vae.with_tiling(Some(Tiling { tile: 16, stride: 8 }));
    let mean = vae.encode(&io["tiled_sample"]).unwrap().mean;
    let decoded = vae.decode(&io["tiled_latents"]).unwrap();
    let (dm, dd) = (max_diff(&mean, &io["tiled_mean"]), max_diff(&decoded, &io["tiled_decoded"]));
    eprintln!("tiled: mean {dm:e}, decoded {dd:e}");
    assert!(dm <= 1e-3 && dd <= 1e-3);
}

#[test]
fn streaming_decode_hands_out_one_then_four_frames() {
    let (vae, io) = load("tiny_b");
    let mut sizes = Vec::new();
    let mut chunks = Vec::new();
    vae.decode_streaming(&io["latents"], |chunk| {
        sizes.push(chunk.dim(2)?);
        chunks.push(chunk);
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes, vec![1, 4, 4]);
    let whole = Tensor::cat(&chunks, 2).unwrap();
    assert!(max_diff(&whole, &io["decoded"]) <= 1e-3);
}

#[test]
fn latent_normalisation_round_trips() {
    let (vae, io) = load("tiny_a");
    let z = &io["latents"];
    let n = vae.normalize_latents(z).unwrap();
    // Channel 1 has mean -0.2 and std 0.5.
    let got = n.narrow(1, 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let raw = z.narrow(1, 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    assert!((got - (raw + 0.2) / 0.5).abs() < 1e-5);
    assert!(max_diff(&vae.denormalize_latents(&n).unwrap(), z) < 1e-5);
}

#[test]
fn bad_frame_counts_and_sizes_are_explained() {
    let (vae, _) = load("tiny_b");
    let x = Tensor::zeros((1, 3, 6, 16, 24), DType::F32, &Device::Cpu).unwrap();
    let err = vae.encode(&x).unwrap_err().to_string();
    assert!(err.contains("4k+1 frames") && err.contains("[1, 3, 6, 16, 24]"), "{err}");
    let x = Tensor::zeros((1, 3, 5, 12, 24), DType::F32, &Device::Cpu).unwrap();
    assert!(vae.encode(&x).unwrap_err().to_string().contains("multiples of 8"));
}
