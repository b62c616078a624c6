//! The data pipeline (docs/training.md "Data"): sources → bucketed, augmented examples →
//! batches prepared ahead on a background thread.
//!
//! Everything random is a pure function of `(seed, sample id)` (counter-based draws from
//! `reel_schedulers::noise`), and batches are *planned* before they are loaded: the plan
//! of micro-batch `k` (its bucket and its items) depends only on the seed and `k`. That makes
//! the pipeline deterministic regardless of threads and prefetch depth, lets a resumed run
//! continue at micro-batch `k` by replaying the plans (cheap: no decoding), and lets each
//! data-parallel rank load only its own slice of a global batch.

pub mod augment;
pub mod sampling;
mod source;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use reel_schedulers::noise;

use crate::config::{Bucket, DataConfig};
use crate::error::{Result, TrainError};
pub use source::{Dataset, Item, Skipped};

const BUCKET_STREAM: u64 = 0xb0c4;
const SHUFFLE_STREAM: u64 = 0x5fe1;
/// Stream of per-sample augmentation draws.
pub const AUG_STREAM: u64 = 0xa06;
const SUBSTITUTE_STREAM: u64 = 0x5b57;
/// Unreadable items tried in a row before a batch gives up.
const MAX_SUBSTITUTES: u64 = 16;

/// One loaded example.
#[derive(Clone, Debug)]
pub struct Example {
    /// `[3, F, H, W]` in [−1, 1] (pixels) — or, from a latent cache, the latents.
    pub payload: ExamplePayload,
    pub caption: String,
    pub fps: f32,
}

#[derive(Clone, Debug)]
pub enum ExamplePayload {
    Pixels(Vec<f32>),
    Latents { mean: Tensor, logvar: Tensor, text: Option<Tensor> },
}

/// What a batch carries.
#[derive(Clone, Debug)]
pub enum Payload {
    /// `[B, 3, F, H, W]` in [−1, 1].
    Pixels(Tensor),
    /// `[B, z, T, h, w]` posterior (before normalisation) and, when cached, text embeddings `[B, L, D]`.
    Latents { mean: Tensor, logvar: Tensor, text: Option<Tensor> },
}

/// One rank's share of one micro-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Micro-batch number within its stage.
    pub index: u64,
    pub bucket: Bucket,
    pub payload: Payload,
    pub captions: Vec<String>,
    pub fps: Vec<f32>,
    /// Run-wide sample ids (they key every per-sample random draw, here and in the trainer).
    pub sample_ids: Vec<u64>,
    /// Files that failed to load while making this batch (each replaced by another item).
    pub skipped: Vec<Skipped>,
}

/// A planned micro-batch: the bucket and, per global slot, the sample id and item.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub index: u64,
    pub bucket: usize,
    /// `(sample id, item)` for the whole global batch (all ranks).
    pub slots: Vec<(u64, u64)>,
}

/// Decides micro-batches one after another. See the module docs.
pub struct Planner {
    seed: u64,
    buckets: Vec<Bucket>,
    /// Items that fit each bucket; `None` for an endless source (Shapes World).
    lists: Vec<Option<Vec<u64>>>,
    /// Per bucket: samples drawn so far and the shuffled order of the current epoch.
    cursors: Vec<u64>,
    orders: Vec<(u64, Vec<u64>)>,
    ranks: usize,
    id_base: u64,
    next_id: u64,
    next_index: u64,
}

impl Planner {
    /// `id_base` separates the sample ids of different stages.
    pub fn new(dataset: &Dataset, buckets: &[Bucket], seed: u64, ranks: usize, id_base: u64) -> Result<Self> {
        let lists = buckets.iter().map(|b| dataset.items_for(b, buckets)).collect::<Vec<_>>();
        if lists.iter().all(|l| l.as_ref().is_some_and(|l| l.is_empty())) {
            return Err(TrainError::Data(format!(
                "no usable example fits any bucket ({} items, {} skipped): check the buckets' frames against the videos' lengths and data.fps",
                dataset.len(),
                dataset.skipped().len()
            )));
        }
        let n = buckets.len();
        Ok(Self { seed, buckets: buckets.to_vec(), lists, cursors: vec![0; n], orders: vec![(u64::MAX, Vec::new()); n], ranks, id_base, next_id: 0, next_index: 0 })
    }

    fn weight(&self, j: usize) -> f64 {
        self.buckets[j].weight * self.lists[j].as_ref().map_or(1.0, |l| l.len() as f64)
    }

    /// Plans micro-batch `self.next_index`.
    pub fn next_plan(&mut self) -> Plan {
        let index = self.next_index;
        self.next_index += 1;
        let total: f64 = (0..self.buckets.len()).map(|j| self.weight(j)).sum();
        let mut pick = noise::uniform(noise::key(self.seed, BUCKET_STREAM), index) * total;
        let mut bucket = 0;
        for j in 0..self.buckets.len() {
            let w = self.weight(j);
            if w > 0.0 {
                bucket = j;
                if pick <= w {
                    break;
                }
                pick -= w;
            }
        }
        let global = self.buckets[bucket].batch_size * self.ranks;
        let slots = (0..global)
            .map(|_| {
                let id = self.id_base + self.next_id;
                self.next_id += 1;
                let item = self.draw(bucket, id);
                (id, item)
            })
            .collect();
        Plan { index, bucket, slots }
    }

    /// The next item of bucket `j`: a fresh Shapes World clip, or the next of this epoch's shuffle.
    fn draw(&mut self, j: usize, id: u64) -> u64 {
        let Some(list) = &self.lists[j] else { return id };
        let n = list.len() as u64;
        let pos = self.cursors[j];
        self.cursors[j] += 1;
        let epoch = pos / n;
        if self.orders[j].0 != epoch {
            let mut order = list.clone();
            let key = noise::item_key(self.seed ^ (j as u64).wrapping_mul(0x9E37), SHUFFLE_STREAM, epoch);
            for i in (1..order.len()).rev() {
                let r = (noise::uniform(key, i as u64) * (i + 1) as f64) as usize;
                order.swap(i, r.min(i));
            }
            self.orders[j] = (epoch, order);
        }
        self.orders[j].1[(pos % n) as usize]
    }
}

/// Loads the slice of `plan` that belongs to `rank`.
pub fn load_batch(dataset: &Dataset, plan: &Plan, buckets: &[Bucket], rank: usize, config: &DataConfig, seed: u64) -> Result<Batch> {
    let bucket = buckets[plan.bucket];
    let b = bucket.batch_size;
    let mine = &plan.slots[rank * b..(rank + 1) * b];
    let loaded: Vec<(Example, Vec<Skipped>)> = mine
        .par_iter()
        .map(|&(id, item)| {
            let mut skipped = Vec::new();
            let mut item = item;
            for attempt in 0..=MAX_SUBSTITUTES {
                match dataset.load(item, &bucket, id, config, seed) {
                    Ok(example) => return Ok((example, skipped)),
                    Err(reason) => {
                        tracing::warn!("skipping {}: {reason}", dataset.describe(item));
                        skipped.push(Skipped { path: dataset.describe(item), reason });
                        let list = dataset.items_for(&bucket, buckets).unwrap_or_default();
                        if list.is_empty() {
                            break;
                        }
                        let r = noise::uniform(noise::item_key(seed, SUBSTITUTE_STREAM, id), attempt);
                        item = list[((r * list.len() as f64) as usize).min(list.len() - 1)];
                    }
                }
            }
            Err(TrainError::Data(format!("{} unreadable items in a row while making a batch; last: {}", skipped.len(), skipped.last().map_or(String::new(), |s| s.to_string()))))
        })
        .collect::<Result<_>>()?;
    let device = Device::Cpu;
    let mut captions = Vec::with_capacity(b);
    let mut fps = Vec::with_capacity(b);
    let mut skipped = Vec::new();
    let mut pixels = Vec::new();
    let (mut means, mut logvars, mut texts) = (Vec::new(), Vec::new(), Vec::new());
    for (example, s) in loaded {
        captions.push(example.caption);
        fps.push(example.fps);
        skipped.extend(s);
        match example.payload {
            ExamplePayload::Pixels(p) => pixels.extend(p),
            ExamplePayload::Latents { mean, logvar, text } => {
                means.push(mean);
                logvars.push(logvar);
                texts.extend(text);
            }
        }
    }
    let payload = if means.is_empty() {
        let shape = (b, 3, bucket.frames as usize, bucket.height as usize, bucket.width as usize);
        Payload::Pixels(Tensor::from_vec(pixels, shape, &device)?)
    } else {
        let text = if texts.len() == means.len() { Some(Tensor::stack(&texts, 0)?) } else { None };
        Payload::Latents { mean: Tensor::stack(&means, 0)?, logvar: Tensor::stack(&logvars, 0)?, text }
    };
    Ok(Batch { index: plan.index, bucket, payload, captions, fps, sample_ids: mine.iter().map(|s| s.0).collect(), skipped })
}

/// Where a loader starts and which slice it loads.
#[derive(Clone, Debug)]
pub struct LoaderSpec {
    pub buckets: Vec<Bucket>,
    pub seed: u64,
    /// First micro-batch to deliver (earlier plans are replayed, not loaded).
    pub start: u64,
    pub rank: usize,
    pub ranks: usize,
    pub id_base: u64,
}

/// Prepares batches on a background thread, at most `prefetch` ahead (a bounded queue).
pub struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Loader {
    pub fn start(dataset: Arc<Dataset>, config: DataConfig, spec: LoaderSpec) -> Result<Self> {
        let mut planner = Planner::new(&dataset, &spec.buckets, spec.seed, spec.ranks, spec.id_base)?;
        for _ in 0..spec.start {
            planner.next_plan();
        }
        let (tx, rx) = sync_channel(config.prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let handle = std::thread::Builder::new()
            .name("reel-data".into())
            .spawn(move || {
                while !stop_thread.load(Ordering::Relaxed) {
                    let plan = planner.next_plan();
                    let batch = load_batch(&dataset, &plan, &spec.buckets, spec.rank, &config, spec.seed);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| TrainError::Data(format!("cannot start the loader thread: {e}")))?;
        Ok(Self { rx: Some(rx), stop, handle: Some(handle) })
    }

    pub fn next_batch(&mut self) -> Result<Batch> {
        let rx = self.rx.as_ref().expect("receiver lives until drop");
        rx.recv().map_err(|_| TrainError::Data("the loader thread stopped".into()))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a thread waiting to send.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    fn folder(n: usize) -> Dataset {
        let items = (0..n)
            .map(|i| Item { path: format!("{i}.png").into(), caption: format!("clip {i}"), frames: 1, fps: 1.0, width: 32, height: 32 })
            .collect();
        Dataset::Files { kind: SourceKind::Images, items, skipped: Vec::new(), rates: Vec::new() }
    }

    fn bucket(batch_size: usize) -> Bucket {
        Bucket { width: 32, height: 32, frames: 1, batch_size, weight: 1.0 }
    }

    #[test]
    fn every_item_once_per_epoch_in_a_seeded_order() {
        let ds = folder(5);
        let mut planner = Planner::new(&ds, &[bucket(1)], 3, 1, 0).unwrap();
        let items: Vec<u64> = (0..10).map(|_| planner.next_plan().slots[0].1).collect();
        for epoch in items.chunks(5) {
            let mut sorted = epoch.to_vec();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4], "{items:?}");
        }
        assert_ne!(items[..5], items[5..], "each epoch is shuffled afresh");
        let mut again = Planner::new(&ds, &[bucket(1)], 3, 1, 0).unwrap();
        assert_eq!((0..10).map(|_| again.next_plan().slots[0].1).collect::<Vec<_>>(), items);
        let mut other = Planner::new(&ds, &[bucket(1)], 4, 1, 0).unwrap();
        assert_ne!((0..10).map(|_| other.next_plan().slots[0].1).collect::<Vec<_>>(), items);
    }

    #[test]
    fn ranks_split_one_global_batch_with_run_wide_sample_ids() {
        let ds = folder(8);
        let mut two = Planner::new(&ds, &[bucket(2)], 0, 2, 1 << 40).unwrap();
        let mut one = Planner::new(&ds, &[bucket(4)], 0, 1, 1 << 40).unwrap();
        for _ in 0..3 {
            let (a, b) = (two.next_plan(), one.next_plan());
            assert_eq!(a.slots, b.slots, "2 ranks × 2 plan what 1 rank × 4 plans");
            assert_eq!(a.slots.len(), 4);
        }
        assert_eq!(two.next_plan().slots[0].0, (1 << 40) + 12);
    }

    #[test]
    fn a_bucket_no_item_fits_is_an_error() {
        let ds = folder(3);
        let long = Bucket { frames: 17, ..bucket(1) };
        let err = Planner::new(&ds, &[long], 0, 1, 0).err().expect("nothing fits").to_string();
        assert!(err.contains("no usable example fits"), "{err}");
    }
}
