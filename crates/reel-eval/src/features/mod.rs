//! Video feature networks for Fréchet distances between sets of clips (docs/eval.md):
//!
//! - [`shapes_net::ShapesNet`], Reel's own small network trained on Shapes World and built
//!   into the binary ([`FeatureNet::bundled`]), so that "FVD-Shapes" numbers exist offline;
//! - [`i3d::I3d`], the network of FVD proper, from a safetensors file the user supplies.
//!
//! Both see a fixed number of frames: a clip's first ones, or, for a shorter clip, its frames
//! spread evenly (some repeated); frames are resized bilinearly to the network's size.

pub mod i3d;
pub mod shapes_net;
pub mod train;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::frechet::{frechet_distance, FeatureStats};
use crate::image::Rgb;
use crate::{EvalError, Result};
use shapes_net::{ShapesNet, ShapesNetConfig};

/// The bundled network's files, built into the binary (`reel eval features train` made them).
const BUNDLED_CONFIG: &str = include_str!("../../assets/shapes-features-v1/config.json");
const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../assets/shapes-features-v1/model.safetensors");
pub const BUNDLED_NAME: &str = "shapes-features-v1";

/// Frame indices a network of `n` frames reads from a clip of `len` frames.
pub fn pick_frames(len: usize, n: usize) -> Vec<usize> {
    if len >= n {
        (0..n).collect()
    } else {
        (0..n).map(|i| if n == 1 { 0 } else { (i * (len - 1) + (n - 1) / 2) / (n - 1) }).collect()
    }
}

/// `[B, 3, frames, size, size]` in −1…1 from clips (frames picked by [`pick_frames`]).
pub fn clips_tensor(clips: &[&[Frame]], frames: usize, size: usize) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(clips.len() * 3 * frames * size * size);
    for clip in clips {
        if clip.is_empty() {
            candle_core::bail!("a clip has no frames");
        }
        let picked: Vec<Rgb> = pick_frames(clip.len(), frames)
            .into_iter()
            .map(|i| {
                let rgb = Rgb::from_frame(&clip[i]);
                if rgb.width == size && rgb.height == size {
                    rgb
                } else {
                    rgb.resize(size, size)
                }
            })
            .collect();
        for c in 0..3 {
            for frame in &picked {
                data.extend(frame.data.iter().map(|p| p[c] / 127.5 - 1.0));
            }
        }
    }
    Tensor::from_vec(data, (clips.len(), 3, frames, size, size), &Device::Cpu)
}

/// Which features an I3D network gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum I3dLayer {
    /// The class logits (the original FVD's embedding).
    Logits,
    /// The pooled features before them.
    Pool,
}

/// A feature network ready to embed clips.
pub enum FeatureNet {
    Shapes { name: String, net: ShapesNet },
    I3d { name: String, net: Box<i3d::I3d>, layer: I3dLayer },
}

impl FeatureNet {
    /// The Shapes World network built into the binary.
    pub fn bundled() -> Result<Self> {
        let bad = |reason: String| EvalError::Features { path: PathBuf::from(BUNDLED_NAME), reason };
        let config: ShapesNetConfig = serde_json::from_str(BUNDLED_CONFIG).map_err(|e| bad(e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(BUNDLED_WEIGHTS, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
        Self::shapes(BUNDLED_NAME.into(), &config, tensors).map_err(|e| bad(e.to_string()))
    }

    fn shapes(name: String, config: &ShapesNetConfig, tensors: HashMap<String, Tensor>) -> candle_core::Result<Self> {
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Ok(Self::Shapes { name, net: ShapesNet::new(config, vb)? })
    }

    /// A network from disk: a Shapes network's folder (`config.json` + `model.safetensors`,
    /// as `reel eval features train` writes), or an I3D `.safetensors` file.
    pub fn load(path: &Path, layer: I3dLayer) -> Result<Self> {
        let bad = |reason: String| EvalError::Features { path: path.to_path_buf(), reason };
        let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
        if path.is_dir() {
            let config_path = path.join("config.json");
            let text = std::fs::read_to_string(&config_path).map_err(|e| bad(format!("cannot read {}: {e}", config_path.display())))?;
            let config: ShapesNetConfig = serde_json::from_str(&text).map_err(|e| bad(format!("config.json: {e}")))?;
            let tensors = candle_core::safetensors::load(path.join("model.safetensors"), &Device::Cpu).map_err(|e| bad(e.to_string()))?;
            return Self::shapes(name, &config, tensors).map_err(|e| bad(e.to_string()));
        }
        if !path.exists() {
            return Err(bad("no such file or folder".into()));
        }
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let names: Vec<String> = tensors.keys().cloned().collect();
        if !i3d::I3d::recognises(&names) {
            return Err(bad("these weights are not an I3D network (no 'Conv3d_1a_7x7.conv3d.weight'); pass I3D weights with the PyTorch port's names, or a Shapes feature network's folder".into()));
        }
        let net = i3d::I3d::from_tensors(tensors).map_err(|e| bad(e.to_string()))?;
        Ok(Self::I3d { name, net: Box::new(net), layer })
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Shapes { name, .. } | Self::I3d { name, .. } => name,
        }
    }

    /// (frames, size) the network reads.
    pub fn input(&self) -> (usize, usize) {
        match self {
            Self::Shapes { net, .. } => (net.config().frames, net.config().size),
            Self::I3d { .. } => (16, 224),
        }
    }

    /// One feature vector per clip, `batch` clips at a time.
    pub fn features(&self, clips: &[&[Frame]], batch: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
        let (frames, size) = self.input();
        let mut out = Vec::with_capacity(clips.len());
        for chunk in clips.chunks(batch.max(1)) {
            let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                let x = clips_tensor(chunk, frames, size)?;
                let f = match self {
                    Self::Shapes { net, .. } => net.forward(&x)?.0,
                    Self::I3d { net, layer, .. } => {
                        let o = net.forward(&x)?;
                        match layer {
                            I3dLayer::Logits => o.logits,
                            I3dLayer::Pool => o.pooled,
                        }
                    }
                };
                f.to_vec2::<f32>()
            };
            out.extend(run().map_err(|e| EvalError::Features { path: PathBuf::from(self.name()), reason: e.to_string() })?);
            progress(out.len());
        }
        Ok(out)
    }
}

const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv", "avi", "gif"];

/// The clips of a set: a manifest (`.jsonl`), an evaluation (`evaluation.json` or its
/// folder), a folder with a `manifest.jsonl`, or any folder of video files (sorted by name).
pub fn clip_files(path: &Path) -> Result<Vec<PathBuf>> {
    let manifest = |m: &Path| -> Result<Vec<PathBuf>> {
        let root = crate::evaluate::manifest_dir(m);
        Ok(crate::evaluate::read_entries(m)?.into_iter().map(|e| root.join(e.file)).collect())
    };
    let evaluation = |e: &Path| -> Result<Vec<PathBuf>> {
        let ev = crate::Evaluation::load(e)?;
        Ok(ev.clips.iter().map(|c| ev.root.join(&c.file)).collect())
    };
    let files = if path.is_dir() {
        if path.join(crate::evaluate::EVALUATION).exists() {
            evaluation(path)?
        } else if path.join(reel_data::MANIFEST).exists() {
            manifest(&path.join(reel_data::MANIFEST))?
        } else {
            let entries = std::fs::read_dir(path).map_err(crate::error::io_err(path))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
                .collect();
            files.sort();
            files
        }
    } else if path.extension().is_some_and(|e| e == "jsonl") {
        manifest(path)?
    } else if path.extension().is_some_and(|e| e == "json") {
        evaluation(path)?
    } else {
        return Err(EvalError::Features { path: path.to_path_buf(), reason: "not a clip set: pass a manifest.jsonl, an evaluation, or a folder of videos".into() });
    };
    if files.is_empty() {
        return Err(EvalError::Features { path: path.to_path_buf(), reason: format!("holds no clips (videos: {})", VIDEO_EXTENSIONS.join(", ")) });
    }
    Ok(files)
}

/// Decodes clips (in parallel); an unreadable one is the error, naming it.
pub fn read_clips(files: &[PathBuf]) -> Result<Vec<Vec<Frame>>> {
    use rayon::prelude::*;
    files
        .par_iter()
        .map(|path| reel_media::read_video(path).map(|(_, f)| f).map_err(|source| EvalError::Video { path: path.clone(), source }))
        .collect()
}

/// A Fréchet distance between two clip sets and how it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distance {
    /// The feature network.
    pub network: String,
    /// Clips in each set.
    pub n: [usize; 2],
    /// Feature width.
    pub dim: usize,
    pub frechet: f64,
}

/// Fréchet distance between the feature statistics of two clip sets.
pub fn clip_distance(net: &FeatureNet, a: &[&[Frame]], b: &[&[Frame]], batch: usize, mut progress: impl FnMut(usize)) -> Result<Distance> {
    let fa = net.features(a, batch, &mut progress)?;
    let fb = net.features(b, batch, |n| progress(a.len() + n))?;
    let stats = |f: &[Vec<f32>]| FeatureStats::from_features(f).map_err(EvalError::Frechet);
    let (sa, sb) = (stats(&fa)?, stats(&fb)?);
    let frechet = frechet_distance(&sa, &sb).map_err(EvalError::Frechet)?;
    Ok(Distance { network: net.name().to_string(), n: [a.len(), b.len()], dim: sa.dim(), frechet })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_the_first_ones_or_spread_evenly() {
        assert_eq!(pick_frames(17, 16), (0..16).collect::<Vec<_>>());
        assert_eq!(pick_frames(16, 16), (0..16).collect::<Vec<_>>());
        // 4 frames over 7 slots: i·3/6 rounded → 0 1 1 2 2 3 3 ((i·3 + 3) / 6).
        assert_eq!(pick_frames(4, 7), [0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(pick_frames(1, 3), [0, 0, 0]);
    }

    #[test]
    fn clips_become_planar_tensors_in_minus_one_to_one() -> candle_core::Result<()> {
        let clip = vec![Frame::filled(8, 8, [255, 0, 127]), Frame::filled(8, 8, [0, 255, 0])];
        let x = clips_tensor(&[&clip], 2, 4)?;
        assert_eq!(x.dims(), [1, 3, 2, 4, 4]);
        let v = x.flatten_all()?.to_vec1::<f32>()?;
        // Channel 0 (red): frame 0 all 1.0, frame 1 all -1.0.
        assert!(v[..16].iter().all(|&p| p == 1.0) && v[16..32].iter().all(|&p| p == -1.0));
        // Channel 2 (blue) of frame 0: 127/127.5 − 1.
        assert!((v[64] - (127.0 / 127.5 - 1.0)).abs() < 1e-6);
        Ok(())
    }
}
