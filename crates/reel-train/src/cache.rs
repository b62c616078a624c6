//! Latent caches (`reel data cache`): videos encoded once by the VAE (posterior mean and
//! log-variance) and captions by the text encoder, in sharded safetensors with an
//! `index.json`. A cache records hashes of the weights it was made with; training refuses
//! a cache made with a different VAE (or, for cached text, a different text encoder).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Bucket;
use crate::data::{Example, ExamplePayload};
use crate::error::{Result, TrainError};

pub const INDEX: &str = "index.json";
const FORMAT: &str = "reel-latent-cache/1";
/// Bytes of loaded shards kept in memory (the least recently used go first; the newest always
/// stays). Batches draw clips from all over a cache, so a cache that fits is read from disk
/// once: with four shards kept, a 47-shard cache of 64x64x17 clips reloaded a 10 MB shard for
/// nearly every clip drawn, and a transformer step took 0.83 s instead of 0.56–0.72 s.
const SHARD_MEMORY: usize = 2 << 30;

/// 64-bit FNV-1a of `bytes`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_more(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_more(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A 64-bit FNV-1a hash over tensor names, shapes and f32 values, in name order:
/// identifies the weights a cache was made with.
pub fn weights_hash(tensors: &HashMap<String, Tensor>) -> Result<String> {
    let mut h = fnv1a(b"");
    let mut eat = |bytes: &[u8]| h = fnv1a_more(h, bytes);
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        eat(name.as_bytes());
        for d in t.dims() {
            eat(&(*d as u64).to_le_bytes());
        }
        for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
            eat(&v.to_le_bytes());
        }
    }
    Ok(format!("{h:016x}"))
}

/// The hash of a component's weights (names without `prefix`), from its variables or its folder.
pub fn component_hash(weights: &crate::models::Weights, prefix: &str) -> Result<String> {
    let tensors: HashMap<String, Tensor> = match weights {
        crate::models::Weights::Vars(map) => map.data().lock().expect("varmap lock").iter().map(|(k, v)| (format!("{prefix}{k}"), v.as_tensor().clone())).collect(),
        crate::models::Weights::Dir(dir) => {
            let files = reel_models::loading::component_files(dir)?;
            reel_models::loading::load_tensors(&files.weights, &Device::Cpu)?
        }
    };
    weights_hash(&tensors)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub shard: usize,
    pub caption: String,
    pub fps: f32,
    pub source: String,
}

/// `index.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format: String,
    pub vae_hash: String,
    /// Present when text embeddings are cached.
    pub text_encoder_hash: Option<String>,
    pub max_text_len: Option<usize>,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub shards: Vec<String>,
    pub entries: Vec<CacheEntry>,
    /// Source files that could not be encoded.
    pub skipped: Vec<crate::data::Skipped>,
}

/// A loaded shard's tensors by name.
type Shard = Arc<HashMap<String, Tensor>>;

/// An opened cache.
pub struct LatentCache {
    dir: PathBuf,
    index: CacheIndex,
    /// Loaded shards, least recently used first: index, tensors, bytes.
    loaded: Mutex<Vec<(usize, Shard, usize)>>,
}

impl LatentCache {
    pub fn open(dir: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::Cache { path: dir.to_path_buf(), reason };
        let text = std::fs::read_to_string(dir.join(INDEX)).map_err(|e| bad(format!("cannot read {INDEX}: {e}")))?;
        let index: CacheIndex = serde_json::from_str(&text).map_err(|e| bad(format!("{INDEX}: {e}")))?;
        if index.format != FORMAT {
            return Err(bad(format!("format '{}', expected '{FORMAT}'", index.format)));
        }
        if let Some(missing) = index.shards.iter().find(|s| !dir.join(s).is_file()) {
            return Err(bad(format!("shard '{missing}' is missing")));
        }
        Ok(Self { dir: dir.to_path_buf(), index, loaded: Mutex::new(Vec::new()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index(&self) -> &CacheIndex {
        &self.index
    }

    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    pub fn fits(&self, b: &Bucket) -> bool {
        (b.width, b.height, b.frames) == (self.index.width, self.index.height, self.index.frames)
    }

    /// Refuses a cache made with other weights than the run's.
    pub fn check_model(&self, vae_hash: &str, text_encoder_hash: Option<&str>) -> Result<()> {
        let bad = |reason: String| TrainError::Cache { path: self.dir.clone(), reason };
        if self.index.vae_hash != vae_hash {
            return Err(bad(format!("made with VAE weights {}, but this run's VAE is {vae_hash}", self.index.vae_hash)));
        }
        if let (Some(cached), Some(run)) = (&self.index.text_encoder_hash, text_encoder_hash) {
            if cached != run {
                return Err(bad(format!("text embeddings made with text encoder {cached}, but this run's is {run}")));
            }
        }
        Ok(())
    }

    fn shard(&self, i: usize) -> Result<Shard> {
        let mut loaded = self.loaded.lock().expect("cache lock");
        if let Some(pos) = loaded.iter().position(|(s, _, _)| *s == i) {
            let hit = loaded.remove(pos);
            let tensors = hit.1.clone();
            loaded.push(hit);
            return Ok(tensors);
        }
        let path = self.dir.join(&self.index.shards[i]);
        let tensors = Arc::new(
            candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| TrainError::Cache { path: path.clone(), reason: e.to_string() })?,
        );
        let bytes = tensors.values().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum();
        loaded.push((i, tensors.clone(), bytes));
        let mut kept: usize = loaded.iter().map(|l| l.2).sum();
        while loaded.len() > 1 && kept > SHARD_MEMORY {
            kept -= loaded.remove(0).2;
        }
        Ok(tensors)
    }

    /// Entry `item` as an example.
    pub fn load(&self, item: u64) -> Result<Example> {
        let entry = &self.index.entries[item as usize];
        let shard = self.shard(entry.shard)?;
        let get = |kind: &str| {
            shard.get(&format!("{kind}.{item}")).cloned().ok_or_else(|| TrainError::Cache {
                path: self.dir.join(&self.index.shards[entry.shard]),
                reason: format!("no tensor '{kind}.{item}'"),
            })
        };
        let text = if self.index.text_encoder_hash.is_some() { Some(get("text")?) } else { None };
        Ok(Example { payload: ExamplePayload::Latents { mean: get("mean")?, logvar: get("logvar")?, text }, caption: entry.caption.clone(), fps: entry.fps })
    }
}

/// Writes a cache shard by shard into a hidden folder beside `out` (`.NAME.reel-partial`),
/// renamed into place by [`CacheWriter::finish`]. After every shard it records its progress
/// there (`progress.json`), so an interrupted job, run again with the same options, goes on
/// from its last shard instead of starting over; a job that fails before its first shard
/// leaves nothing behind.
pub struct CacheWriter {
    out: PathBuf,
    tmp: PathBuf,
    index: CacheIndex,
    shard_size: usize,
    pending: HashMap<String, Tensor>,
    /// The job's fingerprint, recorded with the progress.
    job: String,
    /// Items consumed (encoded or skipped) when the last shard was written.
    done: u64,
    /// Items consumed so far.
    consumed: u64,
}

/// `progress.json` of a partial cache.
#[derive(Serialize, Deserialize)]
struct Progress {
    job: String,
    done: u64,
    index: CacheIndex,
}

const PROGRESS: &str = "progress.json";

impl CacheWriter {
    /// `job` identifies what is encoded (source, sizes, models, count): a partial cache is
    /// continued only by the same job.
    pub fn create(out: &Path, bucket: &Bucket, vae_hash: String, text: Option<(String, usize)>, shard_size: usize, job: &str) -> Result<Self> {
        if out.exists() {
            return Err(TrainError::Cache { path: out.to_path_buf(), reason: "already exists; choose a new --out or remove it".into() });
        }
        let tmp = Self::partial_dir(out);
        if let Ok(text) = std::fs::read_to_string(tmp.join(PROGRESS)) {
            let progress: Progress = serde_json::from_str(&text).map_err(|e| TrainError::Cache { path: tmp.clone(), reason: format!("unreadable {PROGRESS} ({e}); remove the folder to start over") })?;
            if progress.job != job {
                return Err(TrainError::Cache {
                    path: tmp.clone(),
                    reason: "holds a partial cache made with other options or models; run the command that started it, or remove the folder to start over".into(),
                });
            }
            let shards = progress.index.shards.len();
            return Self { out: out.to_path_buf(), tmp, index: progress.index, shard_size: shard_size.max(1), pending: HashMap::new(), job: job.into(), done: progress.done, consumed: progress.done }.checked(shards);
        }
        std::fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
        let (text_encoder_hash, max_text_len) = text.map_or((None, None), |(h, l)| (Some(h), Some(l)));
        let index = CacheIndex {
            format: FORMAT.into(),
            vae_hash,
            text_encoder_hash,
            max_text_len,
            width: bucket.width,
            height: bucket.height,
            frames: bucket.frames,
            shards: Vec::new(),
            entries: Vec::new(),
            skipped: Vec::new(),
        };
        Ok(Self { out: out.to_path_buf(), tmp, index, shard_size: shard_size.max(1), pending: HashMap::new(), job: job.into(), done: 0, consumed: 0 })
    }

    /// The folder a cache for `out` is written in until it is complete.
    pub fn partial_dir(out: &Path) -> PathBuf {
        let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "cache".into());
        out.with_file_name(format!(".{name}.reel-partial"))
    }

    /// A continued cache's recorded shards must all be there.
    fn checked(self, shards: usize) -> Result<Self> {
        for name in &self.index.shards[..shards] {
            if !self.tmp.join(name).is_file() {
                return Err(TrainError::Cache { path: self.tmp.clone(), reason: format!("{name} is missing; remove the folder to start over") });
            }
        }
        Ok(self)
    }

    /// Items consumed as of the last written shard: where a run of the same job starts (0 for
    /// a new cache), and how far an interrupted one got.
    pub fn saved_items(&self) -> u64 {
        self.done
    }

    /// Records that `done` items of the job have been consumed (encoded or skipped): a shard
    /// written after this resumes the job there.
    pub fn advance(&mut self, done: u64) {
        self.consumed = done;
    }

    /// Adds one encoded example (`mean`/`logvar` `[z, T, h, w]`, `text` `[L, D]`).
    pub fn add(&mut self, mean: &Tensor, logvar: &Tensor, text: Option<&Tensor>, caption: &str, fps: f32, source: &str) -> Result<()> {
        let i = self.index.entries.len();
        self.pending.insert(format!("mean.{i}"), mean.contiguous()?);
        self.pending.insert(format!("logvar.{i}"), logvar.contiguous()?);
        if let Some(t) = text {
            self.pending.insert(format!("text.{i}"), t.contiguous()?);
        }
        self.index.entries.push(CacheEntry { shard: self.index.shards.len(), caption: caption.into(), fps, source: source.into() });
        if self.index.entries.len() % self.shard_size == 0 {
            self.flush()?;
        }
        Ok(())
    }

    pub fn skip(&mut self, skipped: crate::data::Skipped) {
        self.index.skipped.push(skipped);
    }

    fn flush(&mut self) -> Result<()> {
        let done = self.consumed;
        if self.pending.is_empty() {
            return Ok(());
        }
        let name = format!("shard-{:05}.safetensors", self.index.shards.len());
        let path = self.tmp.join(&name);
        candle_core::safetensors::save(&std::mem::take(&mut self.pending), &path).map_err(|e| TrainError::Cache { path, reason: e.to_string() })?;
        self.index.shards.push(name);
        self.done = done;
        // The progress names only shards on disk, and replaces the old one whole.
        let progress = serde_json::to_string(&Progress { job: self.job.clone(), done, index: self.index.clone() }).expect("progress serialises");
        reel_media::write_atomic(&self.tmp.join(PROGRESS), progress.as_bytes())?;
        Ok(())
    }

    /// Writes the index and moves the cache into place (a failure keeps the partial cache and
    /// its progress, so the job can be run again).
    pub fn finish(mut self) -> Result<CacheIndex> {
        self.flush()?;
        let path = self.tmp.join(INDEX);
        std::fs::write(&path, serde_json::to_string_pretty(&self.index).expect("index serialises")).map_err(TrainError::io(&path))?;
        std::fs::rename(&self.tmp, &self.out).map_err(TrainError::io(&self.out))?;
        let _ = std::fs::remove_file(self.out.join(PROGRESS));
        Ok(std::mem::take(&mut self.index))
    }
}

impl Drop for CacheWriter {
    /// An unfinished cache keeps its written shards for the next run of the same job; one
    /// without any leaves nothing behind.
    fn drop(&mut self) {
        // After `finish` the folder has been renamed into place and `tmp` no longer exists.
        if self.tmp.exists() && !self.tmp.join(PROGRESS).exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Clips [`build`] loads and encodes at once, one per thread: one per thread of the pool, and
/// at least four (four at once halved the time on 2 cores; BENCHMARKS.md).
fn parallel_clips() -> usize {
    rayon::current_num_threads().max(4)
}

/// What `reel data cache` encodes.
#[derive(Clone, Debug)]
pub struct CacheJob {
    /// The source (a folder of videos or images, or Shapes World); crops are centred and
    /// there is no flip or jitter, so a cache holds each clip once.
    pub data: crate::config::DataConfig,
    pub bucket: Bucket,
    /// A model directory with `vae/` (and `text_encoder/` + `tokenizer/` to cache text).
    pub model: PathBuf,
    pub with_text: bool,
    pub max_text_len: usize,
    pub shard_size: usize,
    /// For Shapes World: how many clips.
    pub count: Option<u64>,
}

/// Encodes every usable item of `job.data` into a cache at `out`; `progress(done, total)`.
pub fn build(job: &CacheJob, out: &Path, stop: &std::sync::atomic::AtomicBool, mut progress: impl FnMut(u64, u64)) -> Result<CacheIndex> {
    use crate::data::Dataset;
    let dev = Device::Cpu;
    let mut data = job.data.clone();
    data.random_crop = false;
    data.flip = 0.0;
    data.color_jitter = 0.0;
    let dataset = Dataset::open(&data)?;
    let vae_dir = reel_models::loading::resolve_component(&job.model, "vae")?;
    let vae = reel_models::load_wan_vae(&vae_dir, DType::F32, &dev)?;
    let vae_hash = component_hash(&crate::models::Weights::Dir(vae_dir), "")?;
    let text = if job.with_text {
        let dir = reel_models::loading::resolve_component(&job.model, "text_encoder")?;
        let tok = job.model.join("tokenizer").join(crate::models::TOKENIZER_FILE);
        let tokenizer = reel_models::text::tokenizer::TextTokenizer::from_file(&tok)?;
        let hash = component_hash(&crate::models::Weights::Dir(dir.clone()), "")?;
        Some((reel_models::load_text_encoder(&dir, DType::F32, &dev)?, tokenizer, hash))
    } else {
        None
    };
    let items: Vec<u64> = match dataset.items_for(&job.bucket, &[job.bucket]) {
        Some(list) => list,
        None => (0..job.count.unwrap_or(256)).collect(),
    };
    if items.is_empty() {
        return Err(TrainError::Data(format!("no item fits {}x{}x{}", job.bucket.width, job.bucket.height, job.bucket.frames)));
    }
    let fingerprint = serde_json::json!({
        "data": data, "bucket": [job.bucket.width, job.bucket.height, job.bucket.frames], "vae": vae_hash,
        "text": text.as_ref().map(|t| (&t.2, job.max_text_len)), "shard_size": job.shard_size, "items": items.len(), "first": items.first(), "last": items.last(),
    })
    .to_string();
    let mut writer = CacheWriter::create(out, &job.bucket, vae_hash, text.as_ref().map(|t| (t.2.clone(), job.max_text_len)), job.shard_size, &fingerprint)?;
    let start = writer.saved_items();
    if start == 0 {
        for s in dataset.skipped() {
            writer.skip(s.clone());
        }
    }
    let total = items.len() as u64;
    progress(start, total);
    // Chunks of clips, each loaded (rendered or decoded) and encoded on its own thread, then
    // added in order: the same entries as one after another, on every core (one batch of
    // several clips was slower than either; BENCHMARKS.md).
    let todo: Vec<(usize, u64)> = items.iter().copied().enumerate().skip(start as usize).collect();
    for chunk in todo.chunks(parallel_clips()) {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(TrainError::CacheInterrupted { done: writer.saved_items(), total, partial: CacheWriter::partial_dir(out) });
        }
        let b = job.bucket;
        let encoded: Vec<std::result::Result<Result<(Example, Tensor, Tensor)>, String>> = chunk
            .par_iter()
            .map(|&(_, item)| {
                dataset.load(item, &job.bucket, item, &data, 0).map(|ex| {
                    let crate::data::ExamplePayload::Pixels(p) = &ex.payload else { unreachable!("folders give pixels") };
                    let x = Tensor::from_slice(p, (1, 3, b.frames as usize, b.height as usize, b.width as usize), &dev)?;
                    let post = vae.encode(&x)?;
                    Ok((ex, post.mean.squeeze(0)?, post.logvar.squeeze(0)?))
                })
            })
            .collect();
        for (&(n, item), l) in chunk.iter().zip(encoded) {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(TrainError::CacheInterrupted { done: writer.saved_items(), total, partial: CacheWriter::partial_dir(out) });
            }
            let done = n as u64 + 1;
            writer.advance(done);
            match l {
                Ok(encoded) => {
                    let (ex, mean, logvar) = encoded?;
                    let emb = match &text {
                        Some((enc, tok, _)) => Some(reel_pipelines::encode_prompts(enc.as_ref(), tok, &[ex.caption.as_str()], job.max_text_len, &dev)?.squeeze(0)?),
                        None => None,
                    };
                    writer.add(&mean, &logvar, emb.as_ref(), &ex.caption, ex.fps, &dataset.describe(item))?;
                }
                Err(reason) => writer.skip(crate::data::Skipped { path: dataset.describe(item), reason }),
            }
            progress(done, total);
        }
    }
    writer.finish()
}
