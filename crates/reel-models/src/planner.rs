//! A layout planner: text → where each object of a prompt is, how big and what colour, at
//! the start and the end of the clip, and the background colour. The layout stage of
//! LLM-grounded video diffusion, with a small network trained on captioned clips in place
//! of an LLM (`reel train planner`, docs/planner.md).
//!
//! The network reads bags of words: each object's clause of the prompt (the prompt split at
//! the separator word, "and") and the whole prompt. Word embeddings are averaged over a
//! bag, so what a word means adds up the same way in any combination of words — a colour,
//! shape and motion never seen together are planned from what each word means alone.
//!
//! Places are shares of the canvas: x from 0 (left) to 1 (right), y from 0 (top) to 1
//! (bottom), so one plan fits any aspect; a radius is that of the disc with the object's
//! area, in canvas widths.
//!
//! A planner may also draw each object's silhouette (`silhouette_size` > 0): a small square
//! mask of what the object's words say it looks like, centred on the object and spanning
//! [`SILHOUETTE_EXTENT`] equal-area radii either side, so it scales with the planned size.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// Object head outputs: colour (3), start centre (2), log std of the start (2), shift from
/// start to end (2), log radius at start and end (2).
pub const OBJECT_OUTPUTS: usize = 11;
/// A silhouette spans this many equal-area radii either side of the object's centre.
pub const SILHOUETTE_EXTENT: f32 = 2.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutPlannerConfig {
    /// The tokenizer's vocabulary size (the bag's length).
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// The token that separates one object's words from the next ("and").
    #[serde(default)]
    pub separator_id: Option<u32>,
    /// Tokens after which the prompt speaks of the whole scene (","; Shapes World captions
    /// name the camera there): the words after the first of them are every object's context.
    #[serde(default)]
    pub context_ids: Vec<u32>,
    /// Tokens that carry nothing (padding); left out of every bag.
    #[serde(default)]
    pub ignore_ids: Vec<u32>,
    /// At most this many objects; further clauses join the last.
    pub max_objects: usize,
    /// Side of each object's planned silhouette in cells; 0 plans none (objects are painted
    /// as discs).
    #[serde(default)]
    pub silhouette_size: usize,
}

impl LayoutPlannerConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.vocab_size == 0 || self.hidden_size == 0 || self.max_objects == 0 {
            return Err(format!("vocab_size ({}), hidden_size ({}) and max_objects ({}) must be positive", self.vocab_size, self.hidden_size, self.max_objects));
        }
        if self.silhouette_size > 64 {
            return Err(format!("silhouette_size {} is above the 64 cells a side a planner may draw", self.silhouette_size));
        }
        if let Some(s) = self.separator_id.filter(|&s| s as usize >= self.vocab_size) {
            return Err(format!("separator_id {s} is outside the vocabulary of {}", self.vocab_size));
        }
        Ok(())
    }

    /// Bags of a token list: per object clause (the words before the first context token,
    /// split at the separator), its words and the context's (the words after it: a camera
    /// named there moves every object in the frame), and the whole prompt's. Each is a
    /// `vocab_size` vector of word shares (summing to 1, or all zero for no words).
    pub fn bags(&self, ids: &[u32]) -> Bags {
        let c = self;
        let words: Vec<u32> = ids.iter().copied().filter(|id| !c.ignore_ids.contains(id) && (*id as usize) < c.vocab_size).collect();
        let cut = words.iter().position(|id| c.context_ids.contains(id)).unwrap_or(words.len());
        let context: Vec<u32> = words[cut..].iter().copied().filter(|id| !c.context_ids.contains(id)).collect();
        let mut clauses: Vec<Vec<u32>> = vec![Vec::new()];
        for &id in &words[..cut] {
            if Some(id) == c.separator_id && clauses.len() < c.max_objects {
                clauses.push(Vec::new());
            } else if Some(id) != c.separator_id {
                clauses.last_mut().expect("one clause").push(id);
            }
        }
        clauses.retain(|c| !c.is_empty());
        if clauses.is_empty() {
            clauses.push(Vec::new());
        }
        let bag = |ids: &[u32]| {
            let mut v = vec![0f32; c.vocab_size];
            for &id in ids {
                v[id as usize] += 1.0 / ids.len() as f32;
            }
            v
        };
        let context = bag(&context);
        Bags { objects: clauses.iter().map(|ws| bag(ws)).collect(), contexts: vec![context; clauses.len()], prompt: bag(&words) }
    }
}

/// A prompt's bags of words (see [`LayoutPlannerConfig::bags`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Bags {
    pub objects: Vec<Vec<f32>>,
    pub contexts: Vec<Vec<f32>>,
    pub prompt: Vec<f32>,
}

/// A two-layer perceptron.
#[derive(Clone, Debug)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(input: usize, hidden: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { fc1: linear(input, hidden, vb.pp("fc1"))?, fc2: linear(hidden, output, vb.pp("fc2"))? })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }
}

/// One object's plan: colour, where it starts (a distribution), how far it goes, its size.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPlan {
    /// Linear RGB in [0, 1] (clamped).
    pub rgb: [f32; 3],
    /// Mean start centre, and the spread of start places around it (one std per axis;
    /// x in canvas widths, y in canvas heights).
    pub start: [f32; 2],
    pub start_std: [f32; 2],
    /// End centre minus start centre.
    pub shift: [f32; 2],
    /// Equal-area radius at the start and at the end (canvas widths).
    pub radius: [f32; 2],
    /// What the object looks like: `silhouette_size`² coverages in [0, 1], row by row (y
    /// down), over ±[`SILHOUETTE_EXTENT`] equal-area radii around its centre; `None` for a
    /// planner without silhouettes.
    pub silhouette: Option<Vec<f32>>,
}

/// A prompt's plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub background: [f32; 3],
    pub objects: Vec<ObjectPlan>,
}

/// The network.
#[derive(Clone, Debug)]
pub struct LayoutPlanner {
    config: LayoutPlannerConfig,
    embed: Tensor,
    object: Mlp,
    scene: Mlp,
    silhouette: Option<Mlp>,
}

impl LayoutPlanner {
    pub fn new(config: &LayoutPlannerConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let h = config.hidden_size;
        let embed = vb.get_with_hints((config.vocab_size, h), "embed.weight", candle_nn::init::Init::Randn { mean: 0.0, stdev: 1.0 })?;
        let s = config.silhouette_size;
        let silhouette = if s > 0 { Some(Mlp::new(2 * h, 2 * h, s * s, vb.pp("silhouette"))?) } else { None };
        Ok(Self { config: config.clone(), embed, object: Mlp::new(2 * h, 2 * h, OBJECT_OUTPUTS, vb.pp("object"))?, scene: Mlp::new(h, h, 3, vb.pp("scene"))?, silhouette })
    }

    pub fn config(&self) -> &LayoutPlannerConfig {
        &self.config
    }

    /// Raw outputs for a batch of bags: object bags and their context bags `[N, vocab]` →
    /// `[N, OBJECT_OUTPUTS]`; prompt bags `[M, vocab]` → background `[M, 3]`.
    pub fn forward_objects(&self, object_bags: &Tensor, context_bags: &Tensor) -> Result<Tensor> {
        let x = Tensor::cat(&[object_bags.matmul(&self.embed)?, context_bags.matmul(&self.embed)?], D::Minus1)?;
        self.object.forward(&x)
    }

    /// Silhouette logits `[N, silhouette_size²]` of object bags and their prompts' bags
    /// `[N, vocab]` (an object's shape is its own clause's words; a style such as "outlined"
    /// is said once for the whole prompt); `None` without silhouettes.
    pub fn forward_silhouettes(&self, object_bags: &Tensor, prompt_bags: &Tensor) -> Result<Option<Tensor>> {
        let Some(m) = &self.silhouette else { return Ok(None) };
        m.forward(&Tensor::cat(&[object_bags.matmul(&self.embed)?, prompt_bags.matmul(&self.embed)?], D::Minus1)?).map(Some)
    }

    pub fn forward_background(&self, prompt_bags: &Tensor) -> Result<Tensor> {
        self.scene.forward(&prompt_bags.matmul(&self.embed)?)
    }

    /// The plan of a tokenised prompt.
    pub fn plan(&self, ids: &[u32]) -> Result<Plan> {
        let dev = Device::Cpu;
        let bags = self.config.bags(ids);
        let n = bags.objects.len();
        let v = self.config.vocab_size;
        let object_bags = Tensor::from_vec(bags.objects.concat(), (n, v), &dev)?.to_dtype(self.embed.dtype())?;
        let context_bags = Tensor::from_vec(bags.contexts.concat(), (n, v), &dev)?.to_dtype(self.embed.dtype())?;
        let prompt_bag = Tensor::from_vec(bags.prompt, (1, v), &dev)?.to_dtype(self.embed.dtype())?;
        let out: Vec<Vec<f32>> = self.forward_objects(&object_bags, &context_bags)?.to_dtype(DType::F32)?.to_vec2()?;
        let bg: Vec<f32> = self.forward_background(&prompt_bag)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let prompt_bags = prompt_bag.repeat((n, 1))?;
        let silhouettes: Option<Vec<Vec<f32>>> = match self.forward_silhouettes(&object_bags, &prompt_bags)? {
            Some(logits) => Some(candle_nn::ops::sigmoid(&logits)?.to_dtype(DType::F32)?.to_vec2()?),
            None => None,
        };
        let rgb = |v: &[f32]| [v[0].clamp(0.0, 1.0), v[1].clamp(0.0, 1.0), v[2].clamp(0.0, 1.0)];
        Ok(Plan {
            background: rgb(&bg),
            objects: out
                .iter()
                .enumerate()
                .map(|(k, o)| ObjectPlan {
                    rgb: rgb(&o[0..3]),
                    start: [o[3], o[4]],
                    start_std: [o[5].clamp(-8.0, 2.0).exp(), o[6].clamp(-8.0, 2.0).exp()],
                    shift: [o[7], o[8]],
                    radius: [o[9].clamp(-6.0, 0.0).exp(), o[10].clamp(-6.0, 0.0).exp()],
                    silhouette: silhouettes.as_ref().map(|s| s[k].clone()),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn config() -> LayoutPlannerConfig {
        LayoutPlannerConfig { vocab_size: 8, hidden_size: 4, separator_id: Some(2), context_ids: vec![7], ignore_ids: vec![0], max_objects: 2, silhouette_size: 0 }
    }

    #[test]
    fn bags_split_objects_at_the_separator_and_skip_padding() {
        let c = config();
        let b = c.bags(&[3, 4, 2, 5, 6, 0, 0]);
        assert_eq!(b.objects.len(), 2);
        assert_eq!(b.objects[0], vec![0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(b.objects[1], vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0]);
        assert_eq!(b.contexts, vec![vec![0.0; 8]; 2], "no context token, no context");
        assert!((b.prompt.iter().sum::<f32>() - 1.0).abs() < 1e-6 && b.prompt[2] > 0.0 && b.prompt[0] == 0.0, "{b:?}");
        // A third object joins the second; no words at all is one empty bag.
        let b = c.bags(&[3, 2, 4, 2, 5]);
        assert_eq!(b.objects.len(), 2);
        assert_eq!(b.objects[1][4], 0.5);
        // Words after the context token are every object's context, not the last object's.
        let b = c.bags(&[3, 2, 4, 7, 5, 6]);
        assert_eq!(b.objects[1], vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(b.contexts[0], vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0]);
        assert_eq!(b.contexts[0], b.contexts[1]);
        let b = c.bags(&[0, 0]);
        assert_eq!((b.objects, b.contexts), (vec![vec![0.0; 8]], vec![vec![0.0; 8]]));
    }

    #[test]
    fn a_plan_has_one_object_per_clause_within_range() {
        let map = VarMap::new();
        let p = LayoutPlanner::new(&config(), VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
        let plan = p.plan(&[3, 4, 2, 5]).unwrap();
        assert_eq!(plan.objects.len(), 2);
        for o in &plan.objects {
            assert!(o.rgb.iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(o.start_std.iter().chain(&o.radius).all(|&v| v > 0.0 && v.is_finite()));
        }
        assert_eq!(p.plan(&[3, 4]).unwrap().objects.len(), 1);
        assert!(plan.objects.iter().all(|o| o.silhouette.is_none()), "no silhouette head, no silhouettes");
        let map = VarMap::new();
        let p = LayoutPlanner::new(&LayoutPlannerConfig { silhouette_size: 3, ..config() }, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
        for o in p.plan(&[3, 4, 2, 5]).unwrap().objects {
            let s = o.silhouette.expect("a silhouette per object");
            assert_eq!(s.len(), 9);
            assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        let bad = LayoutPlannerConfig { separator_id: Some(9), ..config() };
        assert!(bad.validate().unwrap_err().contains("outside the vocabulary"));
        let bad = LayoutPlannerConfig { silhouette_size: 65, ..config() };
        assert!(bad.validate().unwrap_err().contains("above the 64 cells"));
    }
}
