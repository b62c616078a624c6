//! Text encoders against transformers (fixtures from `tools/reference/text_encoders.py`):
//! hidden states within 1e-4 of their scale, padded batch included.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text_encoders")
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn every_encoder_matches_transformers() {
    for name in ["umt5_tiny", "t5_relu_tiny", "t5_gated_tiny", "bert_tiny"] {
        let io = candle_core::safetensors::load(fixtures().join(format!("{name}.io.safetensors")), &Device::Cpu).unwrap();
        let encoder = reel_models::load_text_encoder(&fixtures().join(name), DType::F32, &Device::Cpu).unwrap();
        let out = encoder.encode(&io["input_ids"], &io["attention_mask"]).unwrap();
        let want = &io["last_hidden_state"];
        assert_eq!(out.dims(), want.dims(), "{name}");
        let err = max_abs(&(&out - want).unwrap());
        let scale = max_abs(want);
        eprintln!("{name}: max error {err:e} at scale {scale:.3}");
        assert!(err <= 1e-4 * scale, "{name}: {err:e}");
    }
}

#[test]
fn unknown_model_types_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("bert_tiny/text_encoder");
    std::fs::copy(src.join("model.safetensors"), tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    let err = reel_models::load_text_encoder(tmp.path(), DType::F32, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("'llama'") && err.contains("t5, umt5, mt5, bert, reel-text"), "{err}");
}
