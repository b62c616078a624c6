//! Reel's own small video feature network, trained on Shapes World to tell every scene label
//! apart, so that Fréchet distances between clip sets ("FVD-Shapes") exist offline.
//!
//! Four (2+1)-D blocks — a 1×3×3 convolution with spatial stride 2, group norm, SiLU, then a
//! 3×1×1 convolution over time with stride 2, group norm, SiLU — take a 16-frame 64×64 clip
//! to `[C, 1, 4, 4]`; the features are its mean over space. A linear head reads the scene's labels from them (multi-hot colours, shapes and
//! motions of all objects; object count, theme, camera, style and mood as classes), which
//! is only what training needs: the features are the product.

use candle_core::{DType, Tensor, D};
use candle_nn::{Module, VarBuilder};
use reel_data::{Camera, Color, Mood, Motion, SceneLabels, Shape, Style, Theme};
use reel_models::layers::conv::{conv3d, ConvWeight};
use serde::{Deserialize, Serialize};

/// `config.json` of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapesNetConfig {
    /// Always `"reel-shapes-features"`.
    pub model_type: String,
    /// Frames per clip the network sees.
    pub frames: usize,
    /// Frame width and height it sees.
    pub size: usize,
    /// Output channels of the four blocks; the last is the feature width.
    pub channels: Vec<usize>,
    pub groups: usize,
}

impl Default for ShapesNetConfig {
    fn default() -> Self {
        Self { model_type: MODEL_TYPE.into(), frames: 16, size: 64, channels: vec![16, 32, 64, 128], groups: 8 }
    }
}

pub const MODEL_TYPE: &str = "reel-shapes-features";

impl ShapesNetConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.model_type != MODEL_TYPE {
            return Err(format!("model_type is '{}', expected '{MODEL_TYPE}'", self.model_type));
        }
        if self.channels.is_empty() || self.channels.iter().any(|&c| c == 0 || c % self.groups.max(1) != 0) {
            return Err(format!("channels {:?} must be non-empty multiples of groups ({})", self.channels, self.groups));
        }
        let reduce = 1usize << self.channels.len();
        if self.size % reduce != 0 || self.frames < reduce {
            return Err(format!("size {} must divide by {reduce} and frames {} be at least {reduce}", self.size, self.frames));
        }
        Ok(())
    }
}

/// Label heads, in the order of the head's outputs: multi-hot groups first, then classes.
pub const MULTI_HOT: [(&str, usize); 3] = [("color", Color::ALL.len()), ("shape", Shape::ALL.len()), ("motion", Motion::ALL.len())];
pub const CLASSES: [(&str, usize); 5] = [("count", 2), ("theme", Theme::ALL.len()), ("camera", Camera::ALL.len()), ("style", Style::ALL.len()), ("mood", Mood::ALL.len())];

pub fn head_width() -> usize {
    MULTI_HOT.iter().chain(&CLASSES).map(|(_, n)| n).sum()
}

/// What the head should say about a scene: the multi-hot vector and the class indices.
pub fn targets(labels: &SceneLabels) -> (Vec<f32>, [u32; 5]) {
    let multi_width: usize = MULTI_HOT.iter().map(|(_, n)| n).sum();
    let mut multi = vec![0f32; multi_width];
    for o in &labels.objects {
        multi[o.color.index()] = 1.0;
        multi[Color::ALL.len() + o.shape.index()] = 1.0;
        multi[Color::ALL.len() + Shape::ALL.len() + o.motion.index()] = 1.0;
    }
    let count = (labels.objects.len().clamp(1, 2) - 1) as u32;
    (multi, [count, labels.theme.index() as u32, labels.camera.index() as u32, labels.style.index() as u32, labels.mood.index() as u32])
}

struct Block {
    spatial: ConvWeight,
    norm1: candle_nn::GroupNorm,
    temporal: ConvWeight,
    norm2: candle_nn::GroupNorm,
    time_stride: usize,
}

impl Block {
    fn new(cin: usize, cout: usize, groups: usize, time_stride: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let conv = |name: &str, cin: usize, k: [usize; 3]| -> candle_core::Result<ConvWeight> {
            let vb = vb.pp(name);
            let w = vb.get_with_hints((cout, cin, k[0], k[1], k[2]), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
            ConvWeight::new(&w, Some(vb.get_with_hints(cout, "bias", candle_nn::Init::Const(0.0))?))
        };
        Ok(Self {
            spatial: conv("spatial", cin, [1, 3, 3])?,
            norm1: candle_nn::group_norm(groups, cout, 1e-5, vb.pp("norm1"))?,
            temporal: conv("temporal", cout, [3, 1, 1])?,
            norm2: candle_nn::group_norm(groups, cout, 1e-5, vb.pp("norm2"))?,
            time_stride,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.pad_with_zeros(3, 1, 1)?.pad_with_zeros(4, 1, 1)?;
        let x = self.norm1.forward(&conv3d(&x, &self.spatial, [1, 2, 2])?)?.silu()?;
        let x = x.pad_with_zeros(2, 1, 1)?;
        self.norm2.forward(&conv3d(&x, &self.temporal, [self.time_stride, 1, 1])?)?.silu()
    }
}

/// The network.
pub struct ShapesNet {
    config: ShapesNetConfig,
    blocks: Vec<Block>,
    head: candle_nn::Linear,
}

impl ShapesNet {
    pub fn new(config: &ShapesNetConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let mut blocks = Vec::new();
        let mut cin = 3;
        for (i, &cout) in config.channels.iter().enumerate() {
            blocks.push(Block::new(cin, cout, config.groups, 2, vb.pp(format!("blocks.{i}")))?);
            cin = cout;
        }
        let head = candle_nn::linear(cin, head_width(), vb.pp("head"))?;
        Ok(Self { config: config.clone(), blocks, head })
    }

    pub fn config(&self) -> &ShapesNetConfig {
        &self.config
    }

    /// # Shapes
    /// `[B, 3, frames, size, size]` in −1…1 → (features `[B, C]`, head logits `[B, head_width()]`).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut x = x.clone();
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let features = x.flatten_from(2)?.mean(2)?;
        let logits = self.head.forward(&features)?;
        Ok((features, logits))
    }
}

/// Training loss: binary cross-entropy summed over the multi-hot outputs (a mean over them
/// would let "no colour at all" look nearly right) plus cross-entropy for each class group;
/// both averaged over the batch. `multi` is `[B, 18]`, `classes` `[B, 5]` (u32).
pub fn loss(logits: &Tensor, multi: &Tensor, classes: &Tensor) -> candle_core::Result<Tensor> {
    let multi_width = multi.dim(1)?;
    let x = logits.narrow(1, 0, multi_width)?;
    // The stable form max(x, 0) − x·t + ln(1 + e^−|x|): candle's own takes ln(sigmoid(x)),
    // which is ln 0 = −∞ (and a NaN loss) once |x| passes about 17.
    let bce = ((x.relu()? - (&x * multi)?)? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let mut total = bce.sum(1)?.mean(0)?;
    let mut at = multi_width;
    for (i, (_, n)) in CLASSES.iter().enumerate() {
        let target = classes.narrow(1, i, 1)?.squeeze(1)?.contiguous()?;
        total = (total + candle_nn::loss::cross_entropy(&logits.narrow(1, at, *n)?, &target)?)?;
        at += n;
    }
    Ok(total)
}

/// Per-group accuracy of the head on a batch: multi-hot groups count a clip right when the
/// set of outputs above 0 equals the target set; class groups by arg-max.
pub fn head_accuracy(logits: &Tensor, multi: &Tensor, classes: &Tensor) -> candle_core::Result<Vec<(&'static str, f64)>> {
    let b = logits.dim(0)?;
    let mut out = Vec::new();
    let mut at = 0;
    for (name, n) in MULTI_HOT {
        let predicted = logits.narrow(1, at, n)?.gt(0.0)?.to_dtype(DType::F32)?;
        let wrong = predicted.ne(&multi.narrow(1, at, n)?)?.to_dtype(DType::F32)?.sum(1)?;
        let right = wrong.eq(0.0)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        out.push((name, right as f64 / b as f64));
        at += n;
    }
    for (i, (name, n)) in CLASSES.iter().enumerate() {
        let predicted = logits.narrow(1, at, *n)?.argmax(D::Minus1)?;
        let target = classes.narrow(1, i, 1)?.squeeze(1)?.contiguous()?;
        let right = predicted.eq(&target)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        out.push((*name, right as f64 / b as f64));
        at += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_data::{ObjectLabels, Size, Speed};

    #[test]
    fn targets_mark_every_object_and_the_scene_classes() {
        let object = |color, shape, motion| ObjectLabels { color, shape, size: Size::Small, motion, speed: Some(Speed::Slow) };
        let labels = SceneLabels {
            objects: vec![object(Color::Blue, Shape::Triangle, Motion::Left), object(Color::White, Shape::Triangle, Motion::Grow)],
            theme: Theme::Sand,
            camera: Camera::ZoomIn,
            style: Style::Pixel,
            mood: Mood::Gloomy,
        };
        let (multi, classes) = targets(&labels);
        let on: Vec<usize> = multi.iter().enumerate().filter(|(_, &v)| v == 1.0).map(|(i, _)| i).collect();
        // blue 2, white 7; triangle 8 + 2 = 10; left 11 + 0, grow 11 + 5.
        assert_eq!(on, [2, 7, 10, 11, 16]);
        assert_eq!(classes, [1, 3, 3, 2, 2]);
        assert_eq!(head_width(), 18 + 2 + 4 + 5 + 3 + 3);
    }

    #[test]
    fn forward_shapes_and_a_loss_that_falls_when_logits_agree() -> candle_core::Result<()> {
        let device = candle_core::Device::Cpu;
        let config = ShapesNetConfig { channels: vec![8, 8, 8, 16], ..Default::default() };
        let vm = candle_nn::VarMap::new();
        let net = ShapesNet::new(&config, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
        let x = Tensor::zeros((2, 3, 16, 64, 64), DType::F32, &device)?;
        let (features, logits) = net.forward(&x)?;
        assert_eq!(features.dims(), [2, 16]);
        assert_eq!(logits.dims(), [2, head_width()]);
        // A head that says exactly the targets (large margins) has a near-zero loss and full accuracy.
        let multi = Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 0.0, 1.0]], &device)?.pad_with_zeros(1, 0, 15)?;
        let classes = Tensor::new(&[[1u32, 2, 0, 1, 0], [0, 0, 4, 2, 2]], &device)?;
        let mut good = vec![vec![-20f32; head_width()]; 2];
        for (row, (m, c)) in good.iter_mut().zip(multi.to_vec2::<f32>()?.iter().zip(classes.to_vec2::<u32>()?)) {
            for (i, &v) in m.iter().enumerate() {
                row[i] = if v == 1.0 { 20.0 } else { -20.0 };
            }
            let mut at = 18;
            for (k, (_, n)) in CLASSES.iter().enumerate() {
                row[at + c[k] as usize] = 20.0;
                at += n;
            }
        }
        let good = Tensor::new(good, &device)?;
        let l = loss(&good, &multi, &classes)?.to_scalar::<f32>()?;
        assert!(l < 1e-3, "loss {l}");
        assert!(head_accuracy(&good, &multi, &classes)?.iter().all(|(_, a)| *a == 1.0));
        let uniform = Tensor::zeros((2, head_width()), DType::F32, &device)?;
        // BCE of 0 logits is ln 2 per output (18 of them); CE of uniform logits is ln n per group.
        let expected = 18.0 * 2f32.ln() + CLASSES.iter().map(|(_, n)| (*n as f32).ln()).sum::<f32>();
        assert!((loss(&uniform, &multi, &classes)?.to_scalar::<f32>()? - expected).abs() < 1e-4);
        Ok(())
    }
}
