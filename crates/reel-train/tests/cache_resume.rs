//! A latent cache interrupted part way keeps its written shards and, built again with the same
//! job, continues to the same cache an uninterrupted build makes; another job is refused.

use reel_train::cache::{build, CacheJob, CacheWriter, LatentCache};
use reel_train::config::{Bucket, DataConfig};
use reel_train::{dist::Single, Options, Quiet, TrainError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// A tiny VAE (one training step), exported as a model folder.
fn tiny_vae(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("vae.toml");
    std::fs::write(
        &cfg,
        "task = \"vae\"\nseed = 1\n[model.vae]\nbase_dim = 8\nz_dim = 4\nnum_res_blocks = 1\nlatents_mean = []\nlatents_std = []\n\
         [data]\nsource = \"shapes\"\n[[data.buckets]]\nwidth = 32\nheight = 32\nframes = 1\nbatch_size = 1\n\
         [optimizer]\nlr = 1e-3\n[train]\nsteps = 1\n[validation]\nevery = 0\n",
    )
    .unwrap();
    let run = dir.join("run");
    let opts = Options { out: run.clone(), resume: false, max_steps: None };
    reel_train::train(&cfg, &opts, &Single, &AtomicBool::new(false), &mut Quiet).unwrap();
    let model = dir.join("model");
    reel_train::export(&run, &model, true, 0).unwrap();
    model
}

fn job(model: &Path, count: u64) -> CacheJob {
    let bucket = Bucket { width: 32, height: 32, frames: 5, batch_size: 1, weight: 1.0 };
    let data: DataConfig = serde_json::from_value(serde_json::json!({ "source": "shapes", "buckets": [bucket] })).unwrap();
    CacheJob { data, bucket, model: model.to_path_buf(), with_text: false, max_text_len: 8, shard_size: 3, count: Some(count) }
}

fn latents(cache: &LatentCache) -> Vec<Vec<f32>> {
    (0..cache.len() as u64)
        .map(|i| match cache.load(i).unwrap().payload {
            reel_train::data::ExamplePayload::Latents { mean, .. } => mean.flatten_all().unwrap().to_vec1().unwrap(),
            _ => panic!("a cache holds latents"),
        })
        .collect()
}

#[test]
fn an_interrupted_cache_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_vae(dir.path());
    let whole = dir.path().join("whole");
    build(&job(&model, 8), &whole, &AtomicBool::new(false), |_, _| {}).unwrap();

    // Stopped after the 5th item: one shard of 3 is on disk, items 4–5 are lost.
    let split = dir.path().join("split");
    let stop = AtomicBool::new(false);
    let err = build(&job(&model, 8), &split, &stop, |done, _| stop.store(done == 5, Ordering::SeqCst)).expect_err("interrupted");
    assert!(matches!(err, TrainError::CacheInterrupted { done: 3, total: 8, .. }), "{err}");
    assert!(err.to_string().contains("run the same command again"), "{err}");
    assert!(!split.exists(), "an unfinished cache is not in place");
    let partial = CacheWriter::partial_dir(&split);
    assert!(partial.join("shard-00000.safetensors").is_file());

    // Another job (more clips) does not continue it, and leaves it as it was.
    let other = build(&job(&model, 9), &split, &AtomicBool::new(false), |_, _| {}).expect_err("refused");
    assert!(other.to_string().contains("other options"), "{other}");
    assert!(partial.join("progress.json").is_file());

    // The same job continues from item 4 and ends with the uninterrupted cache.
    let mut first = None;
    build(&job(&model, 8), &split, &AtomicBool::new(false), |done, _| {
        first.get_or_insert(done);
    })
    .unwrap();
    assert_eq!(first, Some(3), "progress starts at the items already cached");
    assert!(!partial.exists());
    assert!(!split.join("progress.json").exists(), "a finished cache carries no progress record");
    let (a, b) = (LatentCache::open(&whole).unwrap(), LatentCache::open(&split).unwrap());
    assert_eq!(a.index(), b.index());
    assert_eq!(latents(&a), latents(&b));
}

#[test]
fn clips_encoded_in_parallel_match_clips_encoded_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_vae(dir.path());
    let out = dir.path().join("cache");
    let job = job(&model, 11);
    build(&job, &out, &AtomicBool::new(false), |_, _| {}).unwrap();
    let cached = latents(&LatentCache::open(&out).unwrap());
    // With more threads more clips go at once (eight here, four at least): the same cache.
    let wide = dir.path().join("cache-8");
    rayon::ThreadPoolBuilder::new().num_threads(8).build().unwrap().install(|| build(&job, &wide, &AtomicBool::new(false), |_, _| {})).unwrap();
    assert_eq!(latents(&LatentCache::open(&wide).unwrap()), cached, "eight clips at once changed the latents");
    let vae = reel_models::load_wan_vae(&model.join("vae"), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let mut data = job.data.clone();
    data.random_crop = false; // as the cache loads clips
    let dataset = reel_train::data::Dataset::open(&data).unwrap();
    let b = job.bucket;
    for (i, got) in cached.iter().enumerate() {
        let ex = dataset.load(i as u64, &b, i as u64, &data, 0).unwrap();
        let reel_train::data::ExamplePayload::Pixels(p) = ex.payload else { panic!("Shapes World gives pixels") };
        let x = candle_core::Tensor::from_vec(p, (1, 3, b.frames as usize, b.height as usize, b.width as usize), &candle_core::Device::Cpu).unwrap();
        let alone: Vec<f32> = vae.encode(&x).unwrap().mean.flatten_all().unwrap().to_vec1().unwrap();
        let worst = alone.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "clip {i}: {worst}");
    }
}


#[test]
fn a_cache_that_fits_in_memory_is_read_from_disk_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_vae(dir.path());
    let out = dir.path().join("cache");
    build(&job(&model, 21), &out, &AtomicBool::new(false), |_, _| {}).unwrap();
    let cache = LatentCache::open(&out).unwrap();
    let first = latents(&cache);
    // Seven shards of three clips: all stay loaded, so the files are no longer needed.
    let shards: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
    assert_eq!(shards.len(), 7);
    for s in &shards {
        std::fs::remove_file(s).unwrap();
    }
    assert_eq!(latents(&cache), first);
}
