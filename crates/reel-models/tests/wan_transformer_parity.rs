//! The Wan transformer against diffusers (fixtures from `tools/reference/wan_transformer.py`):
//! output within 1e-4 of the output's scale. `REEL_WAN_FIXTURES=DIR` checks another
//! fixture directory made by the same script (other configs). `tiny_c` gives one timestep
//! per latent frame.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reel_models::wan::{SelfAttentionExtras, WanInput};

fn fixture_dir() -> PathBuf {
    std::env::var_os("REEL_WAN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan_transformer"))
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".io.safetensors").map(String::from))
        .collect();
    names.sort();
    names
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn matches_diffusers_on_every_fixture_config() {
    let names = cases();
    assert!(names.len() >= 2, "fixtures missing in {}", fixture_dir().display());
    for name in names {
        let dir = fixture_dir();
        let io = candle_core::safetensors::load(dir.join(format!("{name}.io.safetensors")), &Device::Cpu).unwrap();
        let model = reel_models::load_wan_transformer(&dir.join(&name), DType::F32, &Device::Cpu).unwrap();
        let input = WanInput {
            hidden_states: &io["hidden_states"],
            timestep: &io["timestep"],
            encoder_hidden_states: &io["encoder_hidden_states"],
            fps: None,
            frame_offset: 0,
        };
        let out = model.forward(&input).unwrap();
        let want = &io["sample"];
        assert_eq!(out.dims(), want.dims(), "{name}");
        let err = max_abs(&(&out - want).unwrap());
        let scale = max_abs(want);
        eprintln!("{name}: max error {err:e} at output scale {scale:.3}");
        assert!(err <= 1e-4 * scale, "{name}: error {err:e} > 1e-4 × {scale}");
    }
}

#[test]
fn bf16_weights_load_and_are_upcast() {
    let dir = fixture_dir().join("tiny_a");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("transformer");
    std::fs::create_dir(&t).unwrap();
    std::fs::copy(dir.join("transformer/config.json"), t.join("config.json")).unwrap();
    let tensors = candle_core::safetensors::load(dir.join("transformer/diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    let bf16: std::collections::HashMap<String, Tensor> = tensors.into_iter().map(|(k, v)| (k, v.to_dtype(DType::BF16).unwrap())).collect();
    candle_core::safetensors::save(&bf16, t.join("diffusion_pytorch_model.safetensors")).unwrap();
    let io = candle_core::safetensors::load(fixture_dir().join("tiny_a.io.safetensors"), &Device::Cpu).unwrap();
    let model = reel_models::load_wan_transformer(tmp.path().join("transformer").as_path(), DType::F32, &Device::Cpu).unwrap();
    let input = WanInput { hidden_states: &io["hidden_states"], timestep: &io["timestep"], encoder_hidden_states: &io["encoder_hidden_states"], fps: None, frame_offset: 0 };
    let out = model.forward(&input).unwrap();
    assert_eq!(out.dtype(), DType::F32);
    // bf16 weights keep ~3 significant digits: close to, not equal to, the f32 result.
    let rel = max_abs(&(&out - &io["sample"]).unwrap()) / max_abs(&io["sample"]);
    assert!(rel < 0.1, "bf16 weights drifted by {rel}");
}

#[test]
fn missing_and_misshaped_weights_are_named() {
    let src = fixture_dir().join("tiny_a/transformer");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let mut tensors = candle_core::safetensors::load(src.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("blocks.1.attn2.to_k.weight");
    candle_core::safetensors::save(&tensors, tmp.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let err = reel_models::load_wan_transformer(tmp.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("blocks.1.attn2.to_k.weight"), "{err}");

    tensors.insert("blocks.1.attn2.to_k.weight".into(), Tensor::zeros((36, 35), DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&tensors, tmp.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let err = reel_models::load_wan_transformer(tmp.path(), DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("blocks.1.attn2.to_k.weight") && err.contains("shape"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), empty.path().join("config.json")).unwrap();
    let err = reel_models::load_wan_transformer(empty.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, reel_models::ModelError::NoWeights { .. }), "{err}");
}

#[test]
fn self_attention_extras_and_offsets_reduce_to_the_plain_result() {
    let dir = fixture_dir();
    let model = reel_models::load_wan_transformer(&dir.join("tiny_a"), DType::F32, &Device::Cpu).unwrap();
    let dev = Device::Cpu;
    let attn = model.blocks()[0].self_attention();
    let x = Tensor::randn(0f32, 1.0, (1, 2 * 2 * 3, 36), &dev).unwrap();
    let grid = reel_models::layers::rope::GridPositions { frames: 2, height: 2, width: 3, frame_offset: 0 };
    let rope = reel_models::layers::rope::wan_rope_tables(12, grid, &dev).unwrap();
    let plain = attn.forward_self(&x, &rope, None).unwrap();

    // Appending keys that are masked out changes nothing.
    let extra_k = Tensor::randn(0f32, 1.0, (1, 3, 5, 12), &dev).unwrap();
    let extra_v = Tensor::randn(0f32, 1.0, (1, 3, 5, 12), &dev).unwrap();
    let mut bias = vec![0f32; 12 + 5];
    bias[12..].iter_mut().for_each(|b| *b = f32::NEG_INFINITY);
    let extras = SelfAttentionExtras { key: extra_k, value: extra_v, bias: Some(Tensor::from_vec(bias, (1, 1, 1, 17), &dev).unwrap()) };
    let masked = attn.forward_self(&x, &rope, Some(&extras)).unwrap();
    assert!(max_abs(&(&plain - &masked).unwrap()) < 1e-5);

    // Splitting a video in two clips: the second clip's queries over its own keys plus the
    // first clip's keys (at their own positions) equal full attention for those queries.
    let (_, k, v) = attn.self_qkv(&x, &rope).unwrap();
    let first = SelfAttentionExtras { key: k.narrow(2, 0, 6).unwrap(), value: v.narrow(2, 0, 6).unwrap(), bias: None };
    let second_x = x.narrow(1, 6, 6).unwrap();
    let second_grid = reel_models::layers::rope::GridPositions { frames: 1, height: 2, width: 3, frame_offset: 1 };
    let second_rope = reel_models::layers::rope::wan_rope_tables(12, second_grid, &dev).unwrap();
    let clip = attn.forward_self(&second_x, &second_rope, Some(&first)).unwrap();
    let full_rows = plain.narrow(1, 6, 6).unwrap();
    assert!(max_abs(&(&clip - &full_rows).unwrap()) < 1e-5, "clip attention with the other clip's keys = full attention");
}

#[test]
fn bad_inputs_name_the_tensor_and_shape() {
    let model = reel_models::load_wan_transformer(&fixture_dir().join("tiny_a"), DType::F32, &Device::Cpu).unwrap();
    let dev = Device::Cpu;
    let hidden = Tensor::zeros((1, 4, 3, 5, 6), DType::F32, &dev).unwrap();
    let t = Tensor::zeros(1, DType::F32, &dev).unwrap();
    let text = Tensor::zeros((1, 3, 20), DType::F32, &dev).unwrap();
    let input = WanInput { hidden_states: &hidden, timestep: &t, encoder_hidden_states: &text, fps: None, frame_offset: 0 };
    let err = model.forward(&input).unwrap_err().to_string();
    assert!(err.contains("hidden_states: expected [B, 4, F, H, W]") && err.contains("[1, 4, 3, 5, 6]"), "{err}");
}

#[test]
fn fps_conditioning_starts_neutral_and_then_matters() {
    use candle_nn::{VarBuilder, VarMap};
    let dev = Device::Cpu;
    let cfg = reel_models::wan::WanTransformerConfig {
        num_attention_heads: 2, attention_head_dim: 12, in_channels: 4, out_channels: Some(4), text_dim: 8, freq_dim: 8,
        ffn_dim: 16, num_layers: 1, fps_conditioning: true, ..Default::default()
    };
    let map = VarMap::new();
    let model = reel_models::wan::WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let hidden = Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &dev).unwrap();
    let text = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
    let t = Tensor::new(&[400f32], &dev).unwrap();
    let run = |fps: f32| {
        let fps = Tensor::new(&[fps], &dev).unwrap();
        model.forward(&WanInput { hidden_states: &hidden, timestep: &t, encoder_hidden_states: &text, fps: Some(&fps), frame_offset: 0 }).unwrap()
    };
    assert_eq!(max_abs(&(run(8.0) - run(24.0)).unwrap()), 0.0, "a fresh fps embedding is zero");
    // Missing fps is refused for a conditioned model.
    let err = model.forward(&WanInput { hidden_states: &hidden, timestep: &t, encoder_hidden_states: &text, fps: None, frame_offset: 0 }).unwrap_err();
    assert!(err.to_string().contains("fps"), "{err}");
    // Once its output layer is non-zero (as training makes it), the frame rate changes the prediction.
    let data = map.data().lock().unwrap();
    let w = data.get("condition_embedder.fps_embedder.linear_2.weight").unwrap();
    w.set(&Tensor::randn(0f32, 0.5, w.dims(), &dev).unwrap()).unwrap();
    drop(data);
    let model = reel_models::wan::WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let run = |fps: f32| {
        let fps = Tensor::new(&[fps], &dev).unwrap();
        model.forward(&WanInput { hidden_states: &hidden, timestep: &t, encoder_hidden_states: &text, fps: Some(&fps), frame_offset: 0 }).unwrap()
    };
    assert!(max_abs(&(run(8.0) - run(24.0)).unwrap()) > 1e-4);
}

#[test]
fn sharded_weights_with_an_index_load_the_same_model() {
    let src = fixture_dir().join("tiny_a/transformer");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), tmp.path().join("config.json")).unwrap();
    let tensors = candle_core::safetensors::load(src.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).unwrap();
    let (mut a, mut b) = (std::collections::HashMap::new(), std::collections::HashMap::new());
    let mut map = serde_json::Map::new();
    for (i, (name, t)) in tensors.into_iter().enumerate() {
        let shard = if i % 2 == 0 { "model-00001-of-00002.safetensors" } else { "model-00002-of-00002.safetensors" };
        map.insert(name.clone(), serde_json::Value::String(shard.into()));
        if i % 2 == 0 { a.insert(name, t) } else { b.insert(name, t) };
    }
    candle_core::safetensors::save(&a, tmp.path().join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&b, tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(tmp.path().join("diffusion_pytorch_model.safetensors.index.json"), index.to_string()).unwrap();
    let io = candle_core::safetensors::load(fixture_dir().join("tiny_a.io.safetensors"), &Device::Cpu).unwrap();
    let model = reel_models::load_wan_transformer(tmp.path(), DType::F32, &Device::Cpu).unwrap();
    let input = WanInput { hidden_states: &io["hidden_states"], timestep: &io["timestep"], encoder_hidden_states: &io["encoder_hidden_states"], fps: None, frame_offset: 0 };
    assert!(max_abs(&(model.forward(&input).unwrap() - &io["sample"]).unwrap()) < 1e-4);
    // A shard the index names but that is missing is reported by name.
    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = reel_models::load_wan_transformer(tmp.path(), DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("model-00002-of-00002.safetensors") && err.contains("missing"), "{err}");
}

#[test]
fn one_timestep_per_frame_equals_one_per_clip_when_they_agree() {
    let dir = fixture_dir();
    let io = candle_core::safetensors::load(dir.join("tiny_a.io.safetensors"), &Device::Cpu).unwrap();
    let model = reel_models::load_wan_transformer(&dir.join("tiny_a"), DType::F32, &Device::Cpu).unwrap();
    let hidden = &io["hidden_states"];
    let per_clip = &io["timestep"]; // [2]
    let frames = hidden.dim(2).unwrap();
    let per_frame = per_clip.unsqueeze(1).unwrap().broadcast_as((2, frames)).unwrap().contiguous().unwrap();
    let run = |t: &Tensor| model.forward(&WanInput { hidden_states: hidden, timestep: t, encoder_hidden_states: &io["encoder_hidden_states"], fps: None, frame_offset: 0 }).unwrap();
    let (a, b) = (run(per_clip), run(&per_frame));
    assert!(max_abs(&(&a - &b).unwrap()) <= 1e-6 * max_abs(&a), "the same noise level given per frame changes nothing");
    // A clean first frame (timestep 0) changes the prediction of every frame, the others
    // through attention.
    let mut rows = per_frame.to_vec2::<f32>().unwrap();
    rows.iter_mut().for_each(|r| r[0] = 0.0);
    let mixed = run(&Tensor::new(rows, &Device::Cpu).unwrap());
    for f in 0..frames {
        let d = max_abs(&(mixed.narrow(2, f, 1).unwrap() - a.narrow(2, f, 1).unwrap()).unwrap());
        assert!(d > 1e-4, "frame {f} unchanged by the first frame's timestep");
    }
    // A timestep per token or per pixel frame is refused with the shapes it accepts.
    let wrong = Tensor::zeros((2, frames + 1), DType::F32, &Device::Cpu).unwrap();
    let err = model.forward(&WanInput { hidden_states: hidden, timestep: &wrong, encoder_hidden_states: &io["encoder_hidden_states"], fps: None, frame_offset: 0 }).unwrap_err().to_string();
    assert!(err.contains(&format!("[2] or [2, {frames}]")), "{err}");
}
