//! Times Reel's CPU kernels against candle's own on the shapes that matter
//! (BENCHMARKS.md): `cargo run --release -p reel-models --example kernels`.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use reel_models::layers::{attention, conv, fast_math};

fn time(name: &str, mut f: impl FnMut() -> Result<Tensor>) -> Result<()> {
    f()?;
    let start = Instant::now();
    for _ in 0..3 {
        f()?;
    }
    println!("{name:<58} {:>8.1} ms", start.elapsed().as_secs_f64() * 1e3 / 3.0);
    Ok(())
}

fn main() -> Result<()> {
    let d = Device::Cpu;
    let q = Tensor::randn(0f32, 1.0, (1, 12, 4032, 128), &d)?;
    time("attention, 12 heads x 128, 4032 tokens (reel)", || attention::attention(&q, &q, &q, None))?;
    let h = Tensor::randn(0f32, 1.0, (1, 4032, 8960), &d)?;
    time("gelu(tanh) on [4032, 8960] (candle)", || h.gelu())?;
    time("gelu(tanh) on [4032, 8960] (reel)", || fast_math::gelu_tanh(&h))?;
    let x = Tensor::randn(0f32, 1.0, (4, 96, 128, 128), &d)?;
    let w = Tensor::randn(0f32, 1.0, (96, 96, 3, 3), &d)?;
    time("conv2d 3x3 96->96, 4x128x128 (candle)", || x.conv2d(&w, 1, 1, 1, 1))?;
    let cw = conv::ConvWeight::new(&w, None)?;
    time("conv2d 3x3 96->96, 4x128x128 (reel im2col)", || conv::conv2d(&x, &cw, 1, 1))?;
    let a = Tensor::randn(0f32, 1.0, (4032, 1536), &d)?;
    let b = Tensor::randn(0f32, 1.0, (8960, 1536), &d)?.t()?;
    time("matmul [4032,1536]x[1536,8960]", || a.matmul(&b))?;
    Ok(())
}
