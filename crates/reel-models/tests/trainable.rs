//! The models can be trained from fresh weights: every layer has a backward pass, fresh
//! parameters get upstream's initialisation, and a few AdamW steps lower the loss.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use reel_models::wan::{WanInput, WanTransformer3DModel, WanTransformerConfig};
use reel_schedulers::training::{add_noise, velocity_target};

#[test]
fn a_tiny_wan_transformer_learns_a_fixed_batch() {
    let dev = Device::Cpu;
    let cfg = WanTransformerConfig {
        num_attention_heads: 2, attention_head_dim: 12, in_channels: 4, out_channels: Some(4), text_dim: 8, freq_dim: 16,
        ffn_dim: 32, num_layers: 2, fps_conditioning: true, sincos_positions: true, ..Default::default()
    };
    let map = VarMap::new();
    let model = WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let x0 = Tensor::randn(0f32, 1.0, (2, 4, 2, 4, 4), &dev).unwrap();
    let noise = Tensor::randn(0f32, 1.0, (2, 4, 2, 4, 4), &dev).unwrap();
    let text = Tensor::randn(0f32, 1.0, (2, 3, 8), &dev).unwrap();
    let sigmas = Tensor::new(&[0.3f32, 0.8], &dev).unwrap();
    let timestep = (&sigmas * 1000.0).unwrap();
    let fps = Tensor::new(&[8f32, 16.0], &dev).unwrap();
    let xt = add_noise(&x0, &noise, &sigmas).unwrap();
    let target = velocity_target(&x0, &noise).unwrap();
    let input = WanInput { hidden_states: &xt, timestep: &timestep, encoder_hidden_states: &text, fps: Some(&fps), frame_offset: 0 };
    let loss = || (model.forward(&input).unwrap() - &target).unwrap().sqr().unwrap().mean_all().unwrap();

    let mut opt = AdamW::new(map.all_vars(), ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    let first = loss().to_scalar::<f32>().unwrap();
    let grads = loss().backward().unwrap();
    // Every trainable tensor receives a gradient except the zero-initialised fps output layer's
    // inputs (its weight still gets one).
    let missing: Vec<String> = map.data().lock().unwrap().iter().filter(|(_, v)| grads.get(v.as_tensor()).is_none()).map(|(k, _)| k.clone()).collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    for _ in 0..40 {
        opt.backward_step(&loss()).unwrap();
    }
    let last = loss().to_scalar::<f32>().unwrap();
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}

#[test]
fn a_tiny_wan_vae_learns_to_reconstruct() {
    use reel_models::wan::{AutoencoderKLWan, WanVaeConfig};
    let dev = Device::Cpu;
    let cfg = WanVaeConfig {
        base_dim: 4, z_dim: 2, dim_mult: vec![1, 2, 2], num_res_blocks: 1, temperal_downsample: vec![false, true],
        latents_mean: vec![], latents_std: vec![], ..Default::default()
    };
    let map = VarMap::new();
    let vae = AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let x = (Tensor::rand(-1f32, 1.0, (1, 3, 5, 8, 8), &dev).unwrap() * 0.5).unwrap();
    let loss = || {
        let posterior = vae.encode(&x).unwrap();
        let recon = vae.decode(&posterior.mean).unwrap();
        (recon - &x).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let first = loss().to_scalar::<f32>().unwrap();
    let grads = loss().backward().unwrap();
    let missing: Vec<String> = map.data().lock().unwrap().iter().filter(|(_, v)| grads.get(v.as_tensor()).is_none()).map(|(k, _)| k.clone()).collect();
    // The encoder's log-variance half of quant_conv does not reach a reconstruction of the mean.
    assert!(missing.iter().all(|k| k.starts_with("quant_conv")), "no gradient for {missing:?}");
    let mut opt = AdamW::new(map.all_vars(), ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() }).unwrap();
    for _ in 0..30 {
        opt.backward_step(&loss()).unwrap();
    }
    let last = loss().to_scalar::<f32>().unwrap();
    assert!(last < 0.7 * first, "loss went from {first} to {last}");
}

/// Every variable's current value, as a loader would read it from a file.
fn snapshot(map: &VarMap) -> std::collections::HashMap<String, Tensor> {
    map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap())).collect()
}

/// Moves every variable somewhere new, as training does (in place, through `Var::set`).
fn perturb(map: &VarMap) {
    for (i, var) in map.all_vars().iter().enumerate() {
        let t = var.as_tensor();
        let noise = Tensor::randn(0f32, 0.05, t.shape(), t.device()).unwrap();
        var.set(&((t * (1.1 + 0.01 * i as f64)).unwrap() + noise).unwrap()).unwrap();
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// What a model trains is what it exports: after its variables move, a model built on them
/// computes what a model loaded from their values computes. (A transposed copy of the
/// transformer's patch-embedding weight, made once at construction, once kept training runs
/// on their initial patch embedding while the variable moved on unseen, so exported models
/// did not match the model that had been trained.)
#[test]
fn models_follow_their_variables_as_they_train() {
    use reel_models::text::reel_text::{ReelTextConfig, ReelTextEncoder};
    use reel_models::wan::{AutoencoderKLWan, WanVaeConfig};
    let dev = Device::Cpu;

    let cfg = WanTransformerConfig {
        num_attention_heads: 2, attention_head_dim: 8, in_channels: 4, out_channels: Some(4), text_dim: 8, freq_dim: 16,
        ffn_dim: 16, num_layers: 1, fps_conditioning: true, ..Default::default()
    };
    let map = VarMap::new();
    let trained = WanTransformer3DModel::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let xt = Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &dev).unwrap();
    let text = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
    let (timestep, fps) = (Tensor::new(&[500f32], &dev).unwrap(), Tensor::new(&[8f32], &dev).unwrap());
    let input = WanInput { hidden_states: &xt, timestep: &timestep, encoder_hidden_states: &text, fps: Some(&fps), frame_offset: 0 };
    let before = trained.forward(&input).unwrap();
    perturb(&map);
    let after = trained.forward(&input).unwrap();
    let loaded = WanTransformer3DModel::new(&cfg, VarBuilder::from_tensors(snapshot(&map), DType::F32, &dev)).unwrap();
    assert!(max_diff(&before, &after) > 1e-3, "the transformer's output did not change with its weights");
    assert!(max_diff(&after, &loaded.forward(&input).unwrap()) < 1e-5, "the transformer computes with stale weights");

    let cfg = WanVaeConfig {
        base_dim: 4, z_dim: 2, dim_mult: vec![1, 2, 2], num_res_blocks: 1, temperal_downsample: vec![false, true],
        latents_mean: vec![], latents_std: vec![], ..Default::default()
    };
    let map = VarMap::new();
    let trained = AutoencoderKLWan::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let x = Tensor::rand(-1f32, 1.0, (1, 3, 9, 8, 8), &dev).unwrap();
    let run = |vae: &AutoencoderKLWan| vae.decode_unclamped(&vae.encode(&x).unwrap().mean).unwrap();
    let before = run(&trained);
    perturb(&map);
    let after = run(&trained);
    let loaded = AutoencoderKLWan::new(&cfg, VarBuilder::from_tensors(snapshot(&map), DType::F32, &dev)).unwrap();
    assert!(max_diff(&before, &after) > 1e-3, "the VAE's output did not change with its weights");
    assert!(max_diff(&after, &run(&loaded)) < 1e-5, "the VAE computes with stale weights");

    let cfg = ReelTextConfig { vocab_size: 10, hidden_size: 8, num_heads: 2, intermediate_size: 16, max_position_embeddings: 6, ..Default::default() };
    let map = VarMap::new();
    let trained = ReelTextEncoder::new(&cfg, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let ids = Tensor::new(&[[1u32, 4, 7, 2]], &dev).unwrap();
    let mask = Tensor::ones((1, 4), DType::U32, &dev).unwrap();
    let before = trained.forward(&ids, &mask).unwrap();
    perturb(&map);
    let after = trained.forward(&ids, &mask).unwrap();
    let loaded = ReelTextEncoder::new(&cfg, VarBuilder::from_tensors(snapshot(&map), DType::F32, &dev)).unwrap();
    assert!(max_diff(&before, &after) > 1e-3, "the text encoder's output did not change with its weights");
    assert!(max_diff(&after, &loaded.forward(&ids, &mask).unwrap()) < 1e-5, "the text encoder computes with stale weights");
}

#[test]
fn sincos_positions_start_as_a_no_op_and_tell_tokens_apart() {
    let dev = Device::Cpu;
    let plain = WanTransformerConfig {
        num_attention_heads: 2, attention_head_dim: 12, in_channels: 4, out_channels: Some(4), text_dim: 8, freq_dim: 16,
        ffn_dim: 32, num_layers: 2, patch_size: [1, 1, 1], ..Default::default()
    };
    let with_positions = WanTransformerConfig { sincos_positions: true, ..plain.clone() };
    let map = VarMap::new();
    let a = WanTransformer3DModel::new(&plain, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let b = WanTransformer3DModel::new(&with_positions, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let text = Tensor::randn(0f32, 1.0, (1, 3, 8), &dev).unwrap();
    let timestep = Tensor::new(&[900f32], &dev).unwrap();
    let run = |m: &WanTransformer3DModel, x: &Tensor| {
        m.forward(&WanInput { hidden_states: x, timestep: &timestep, encoder_hidden_states: &text, fps: None, frame_offset: 0 }).unwrap()
    };
    // The projection starts at zero: the same output as the model without positions.
    let x = Tensor::randn(0f32, 1.0, (1, 4, 3, 4, 4), &dev).unwrap();
    assert_eq!(max_diff(&run(&a, &x), &run(&b, &x)), 0.0);
    // Every token alike (one latent value everywhere, one latent pixel per token): with
    // relative positions only, every token's output is the same; with a non-zero projection, tokens at different places differ.
    let flat = Tensor::ones((1, 4, 3, 4, 4), DType::F32, &dev).unwrap();
    let spread = |y: &Tensor| {
        let y = y.flatten_from(2).unwrap(); // [1, C, F·H·W]
        y.broadcast_sub(&y.mean_keepdim(2).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    };
    assert!(spread(&run(&a, &flat)) < 1e-5, "{}", spread(&run(&a, &flat)));
    let w = map.data().lock().unwrap().get("pos_embedding.weight").expect("the projection is a variable").clone();
    w.set(&Tensor::randn(0f32, 0.5, w.shape(), &dev).unwrap()).unwrap();
    assert!(spread(&run(&b, &flat)) > 1e-3, "{}", spread(&run(&b, &flat)));
    // A clip's later part (a frame offset) sees other features than its start.
    let later = b.forward(&WanInput { hidden_states: &flat, timestep: &timestep, encoder_hidden_states: &text, fps: None, frame_offset: 3 }).unwrap();
    assert!(max_diff(&run(&b, &flat), &later) > 1e-3);
    // A width the three axes cannot share evenly is refused.
    let odd = WanTransformerConfig { num_attention_heads: 1, attention_head_dim: 8, ..with_positions };
    assert!(odd.validate().unwrap_err().contains("sincos_positions"));
}
