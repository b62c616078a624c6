//! Training a model's layout planner (`reel train planner MODEL`, docs/planner.md): a small
//! supervised fit from captions to where each object is at the start and the end of its
//! clip, how big, what colour and (with silhouettes) what it looks like, on Shapes World
//! train-split scenes drawn on the fly (no held-out triple). The targets come from each
//! scene's geometry, seen through its camera, so they are exact. It takes seconds, so it has no checkpoints: a run writes
//! `MODEL/planner/` whole, or nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use reel_data::render::shape_sdf;
use reel_data::scene::{camera_at, world_to_screen, PlacedObject, Scene};
use reel_data::{Shape, ShapesWorld, Split, WorldConfig};
use reel_models::planner::{LayoutPlanner, LayoutPlannerConfig, SILHOUETTE_EXTENT};
use reel_models::text::tokenizer::{TextTokenizer, PAD};
use reel_schedulers::noise;
use serde::Serialize;

use crate::error::{Result, TrainError};

/// The folder a model keeps its planner in.
pub const DIR: &str = "planner";
const WEIGHTS: &str = "model.safetensors";
/// Noise stream of the minibatches.
const BATCH_STREAM: u64 = 0x706c_616e;

/// How to train.
#[derive(Clone, Debug)]
pub struct PlannerOptions {
    /// Train-split scenes to learn from (world seed `world_seed`).
    pub scenes: u64,
    pub world_seed: u64,
    pub steps: usize,
    pub batch: usize,
    /// AdamW's peak learning rate, decayed to a tenth along a cosine.
    pub lr: f64,
    pub hidden: usize,
    /// Seed of the initial weights and the minibatches.
    pub seed: u64,
    /// Held-out-split scenes the result is measured on.
    pub check_scenes: u64,
    /// Cells a side of each object's planned silhouette; 0 plans none (discs).
    pub silhouette: usize,
    /// If set, written as the model's default `reel.layout_strength` (0–1).
    pub layout_strength: Option<f64>,
    /// If set, written as the model's default `reel.layout_first_frame`.
    pub layout_first_frame: Option<bool>,
    /// If set, written as the model's default `reel.layout_guidance` (0–1).
    pub layout_guidance: Option<f64>,
    /// If set, written as the model's default `reel.layout_erosion` (pixels, 0–8).
    pub layout_erosion: Option<f64>,
    /// If set, written as the model's default `reel.layout_refine` (round trips, 0–4).
    pub layout_refine: Option<u32>,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        Self { scenes: 20_000, world_seed: 1, steps: 3_000, batch: 512, lr: 3e-3, hidden: 64, seed: 0, check_scenes: 1_000, silhouette: 20, layout_strength: None, layout_first_frame: None, layout_guidance: None, layout_erosion: None, layout_refine: None }
    }
}

/// What a run did, and how well the planner plans scenes of held-out triples.
#[derive(Clone, Debug, Serialize)]
pub struct PlannerReport {
    pub planner: std::path::PathBuf,
    pub objects: usize,
    /// Training scenes left out: their caption does not split into one clause per object
    /// (a vocabulary without "and").
    pub skipped_scenes: usize,
    pub first_loss: f32,
    pub loss: f32,
    pub check: PlannerCheck,
}

/// Mean absolute errors of the planned object against the scene's, on held-out scenes.
#[derive(Clone, Debug, Serialize)]
pub struct PlannerCheck {
    pub objects: usize,
    /// End place minus start place, canvas widths.
    pub shift_error: f32,
    /// Log equal-area radius at start and end.
    pub log_radius_error: f32,
    /// Object colour, 8-bit RGB.
    pub colour_error: f32,
    /// Share of objects whose planned path goes the scene's way (the larger of its shift
    /// and its radius change, in the same direction, or neither for still objects).
    pub direction_correct: f32,
    /// The same for objects alone in a static-camera scene (the scoring case).
    pub direction_correct_alone: f32,
    /// With silhouettes: mean absolute coverage error per cell (0–1), and the share of
    /// objects whose planned silhouette is nearer its own shape's than any other shape's.
    pub silhouette_error: Option<f32>,
    pub shape_correct: Option<f32>,
}

/// Radius of the disc with the area of `shape` at `r` (the world's radius: circle radius,
/// square half-side, triangle circumradius).
pub fn equal_area_radius(shape: Shape, r: f64) -> f64 {
    let area = match shape {
        Shape::Circle => std::f64::consts::PI * r * r,
        Shape::Square => 4.0 * r * r,
        Shape::Triangle => 3.0 * 3f64.sqrt() / 4.0 * r * r,
    };
    (area / std::f64::consts::PI).sqrt()
}

/// What `shape` looks like on a `size`² silhouette grid spanning ±[`SILHOUETTE_EXTENT`]
/// equal-area radii around its centre: each cell's coverage (8×8 samples), row by row;
/// drawn as an outline `outline` equal-area radii wide inside its edge (the outlined style),
/// or filled.
pub fn silhouette(shape: Shape, size: usize, outline: Option<f64>) -> Vec<f32> {
    const SAMPLES: usize = 8;
    // World radius 1; grid units are equal-area radii.
    let unit = equal_area_radius(shape, 1.0);
    let cell = 2.0 * SILHOUETTE_EXTENT as f64 / size as f64;
    let at = |k: usize, s: usize| (-(SILHOUETTE_EXTENT as f64) + (k as f64 + (s as f64 + 0.5) / SAMPLES as f64) * cell) * unit;
    (0..size * size)
        .map(|k| {
            let (i, j) = (k % size, k / size);
            let inside = (0..SAMPLES * SAMPLES)
                .filter(|s| {
                    let d = shape_sdf(shape, [at(i, s % SAMPLES), at(j, s / SAMPLES)], 1.0);
                    d < 0.0 && outline.is_none_or(|w| d > -w * unit)
                })
                .count();
            inside as f32 / (SAMPLES * SAMPLES) as f32
        })
        .collect()
}

/// The planner's targets for one object of `scene`: colour (0–1), start centre (x in
/// widths, y in heights), shift to the end centre, log equal-area radius at start and end.
pub fn object_target(scene: &Scene, object: &PlacedObject) -> [f32; 9] {
    let (camera, aspect) = (scene.labels.camera, scene.aspect);
    let seen = |t: f64| {
        let (centre, r) = object.at(t);
        let p = world_to_screen(camera, aspect, t, centre);
        let zoom = camera_at(camera, aspect, t).1;
        ([p[0], p[1] / aspect], equal_area_radius(object.labels.shape, r * zoom))
    };
    let ((a, ra), (b, rb)) = (seen(0.0), seen(1.0));
    let rgb = object.labels.color.rgb();
    [
        rgb[0] as f32 / 255.0,
        rgb[1] as f32 / 255.0,
        rgb[2] as f32 / 255.0,
        a[0] as f32,
        a[1] as f32,
        (b[0] - a[0]) as f32,
        (b[1] - a[1]) as f32,
        ra.ln() as f32,
        rb.ln() as f32,
    ]
}

/// Bags and targets of scenes `0..count` of a world.
struct Examples {
    object_bags: Vec<f32>,
    context_bags: Vec<f32>,
    prompt_bags: Vec<f32>,
    targets: Vec<f32>,
    backgrounds: Vec<f32>,
    /// Whether the object is alone in a static-camera scene (the scoring case's geometry).
    alone: Vec<bool>,
    shapes: Vec<Shape>,
    /// The object's outline width in equal-area radii at the start (outlined style), if any.
    outlines: Vec<Option<f64>>,
    len: usize,
    /// Scenes whose caption does not split into one clause per object.
    skipped: usize,
}

fn examples(world: &ShapesWorld, tokenizer: &TextTokenizer, config: &LayoutPlannerConfig, count: u64) -> Result<Examples> {
    let mut e = Examples { object_bags: Vec::new(), context_bags: Vec::new(), prompt_bags: Vec::new(), targets: Vec::new(), backgrounds: Vec::new(), alone: Vec::new(), shapes: Vec::new(), outlines: Vec::new(), len: 0, skipped: 0 };
    for i in 0..count {
        let scene = world.scene(i);
        let sample = world.sample_of(i, &scene);
        let ids = tokenizer.ids(&sample.caption)?;
        let bags = config.bags(&ids);
        if bags.objects.len() != scene.objects.len() {
            // A vocabulary without the separator cannot tell two objects apart: such scenes
            // teach nothing about either object, and are counted as skipped.
            e.skipped += 1;
            continue;
        }
        let bg = scene.background();
        for ((clause, context), object) in bags.objects.iter().zip(&bags.contexts).zip(&scene.objects) {
            e.object_bags.extend(clause);
            e.context_bags.extend(context);
            e.prompt_bags.extend(&bags.prompt);
            let target = object_target(&scene, object);
            e.targets.extend(target);
            e.backgrounds.extend(bg.map(|v| (v / 255.0) as f32));
            e.alone.push(scene.objects.len() == 1 && scene.labels.camera == reel_data::Camera::Static);
            e.shapes.push(object.labels.shape);
            // The outline's width in the object's equal-area radii at the start (target[7] is its log).
            e.outlines.push((scene.labels.style == reel_data::Style::Outline).then(|| reel_data::render::OUTLINE_WIDTH / f64::from(target[7]).exp()));
            e.len += 1;
        }
    }
    Ok(e)
}

/// The loss of a batch: squared errors of colour, shift, log radius and background, the
/// Gaussian negative log-likelihood of the start place under the planned spread, and with
/// silhouettes the binary cross-entropy of each cell's coverage.
fn loss(planner: &LayoutPlanner, bags: [&Tensor; 3], targets: &Tensor, backgrounds: &Tensor, silhouettes: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let [object_bags, context_bags, prompt_bags] = bags;
    let out = planner.forward_objects(object_bags, context_bags)?;
    let mse = |a: &Tensor, b: &Tensor| (a - b)?.sqr()?.sum(D::Minus1)?.mean_all();
    let colour = mse(&out.narrow(1, 0, 3)?, &targets.narrow(1, 0, 3)?)?;
    let log_std = out.narrow(1, 5, 2)?.clamp(-8f32, 2f32)?;
    let z = ((targets.narrow(1, 3, 2)? - out.narrow(1, 3, 2)?)? * log_std.neg()?.exp()?)?;
    let start = ((z.sqr()? * 0.5)? + &log_std)?.sum(D::Minus1)?.mean_all()?;
    let shift = (mse(&out.narrow(1, 7, 2)?, &targets.narrow(1, 5, 2)?)? * 10.0)?;
    let radius = mse(&out.narrow(1, 9, 2)?, &targets.narrow(1, 7, 2)?)?;
    let background = mse(&planner.forward_background(prompt_bags)?, backgrounds)?;
    let total = (colour + start + shift + radius + background)?;
    match (planner.forward_silhouettes(object_bags, prompt_bags)?, silhouettes) {
        (Some(logits), Some(target)) => {
            // softplus(x) − x·t, written to stay finite for large |x|.
            let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            let bce = (softplus - (&logits * target)?)?.mean_all()?;
            total + (bce * 4.0)?
        }
        _ => Ok(total),
    }
}

/// Trains a planner for the model in `model` (its tokenizer is the planner's vocabulary)
/// and writes it into `model/planner/`, adding it to `model_index.json`.
pub fn train_planner(model: &Path, opts: &PlannerOptions) -> Result<PlannerReport> {
    let tokenizer_path = model.join("tokenizer/tokenizer.json");
    if !tokenizer_path.is_file() {
        return Err(TrainError::Data(format!("'{}' has no tokenizer/tokenizer.json; a planner reads the model's own words", model.display())));
    }
    let index_path = model.join("model_index.json");
    let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).map_err(TrainError::io(&index_path))?)
        .map_err(|e| TrainError::Data(format!("'{}': {e}", index_path.display())))?;
    if opts.steps == 0 || opts.batch == 0 || opts.scenes == 0 || opts.hidden == 0 {
        return Err(TrainError::Data("scenes, steps, batch and hidden must be positive".into()));
    }
    if let Some(s) = opts.layout_strength.filter(|s| !(0.0..=1.0).contains(s)) {
        return Err(TrainError::Data(format!("layout strength {s} is outside 0-1 (the share of the schedule the layout is noised to)")));
    }
    if let Some(g) = opts.layout_guidance.filter(|g| !(0.0..=1.0).contains(g)) {
        return Err(TrainError::Data(format!("layout guidance {g} is outside 0-1 (how far each step is pulled toward the layout)")));
    }
    let max_erosion = reel_pipelines::request::MAX_LAYOUT_EROSION;
    if let Some(e) = opts.layout_erosion.filter(|e| !(0.0..=max_erosion).contains(e)) {
        return Err(TrainError::Data(format!("layout erosion {e} is outside 0-{max_erosion} (the pixels the VAE wears off an object's edge by the last frame)")));
    }
    let max_refine = reel_pipelines::request::MAX_LAYOUT_REFINE;
    if let Some(n) = opts.layout_refine.filter(|&n| n > max_refine) {
        return Err(TrainError::Data(format!("layout refine {n} is outside 0-{max_refine} (the round trips through the VAE that refine the layout's outlines)")));
    }
    if !index.is_object() || index.get("reel").is_some_and(|r| !r.is_object()) {
        return Err(TrainError::Data(format!("'{}' is not a model index (an object, with \"reel\" an object if present)", index_path.display())));
    }
    let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
    let config = LayoutPlannerConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: opts.hidden,
        separator_id: tokenizer.token_id("and"),
        context_ids: tokenizer.token_id(",").into_iter().collect(),
        ignore_ids: tokenizer.token_id(PAD).into_iter().collect(),
        max_objects: 2,
        silhouette_size: opts.silhouette,
    };
    config.validate().map_err(TrainError::Data)?;
    let world = |split, seed| ShapesWorld::new(WorldConfig { seed, split, ..Default::default() });
    let data = examples(&world(Split::Train, opts.world_seed)?, &tokenizer, &config, opts.scenes)?;
    if data.len == 0 {
        return Err(TrainError::Data(format!("none of the {} scenes' captions split into one clause per object with this tokenizer", opts.scenes)));
    }

    let dev = Device::Cpu;
    let map = VarMap::new();
    let planner = LayoutPlanner::new(&config, crate::models::vars(&map, opts.seed, DIR, None)?)?;
    let mut adam = AdamW::new(map.all_vars(), ParamsAdamW { lr: opts.lr, weight_decay: 0.0, ..Default::default() })?;
    let (v, n) = (config.vocab_size, data.len);
    let key = noise::key(opts.seed, BATCH_STREAM);
    let rows = |src: &[f32], width: usize, picks: &[usize]| -> candle_core::Result<Tensor> {
        let mut out = Vec::with_capacity(picks.len() * width);
        for &i in picks {
            out.extend_from_slice(&src[i * width..(i + 1) * width]);
        }
        Tensor::from_vec(out, (picks.len(), width), &dev)
    };
    let looks = Silhouettes::new(opts.silhouette);
    let (mut first, mut last) = (f32::NAN, f32::NAN);
    for step in 0..opts.steps {
        let picks: Vec<usize> = (0..opts.batch).map(|j| ((noise::uniform(key, (step * opts.batch + j) as u64) * n as f64) as usize).min(n - 1)).collect();
        let silhouettes = looks.as_ref().map(|l| l.rows(&data, &picks)).transpose()?;
        let l = loss(
            &planner,
            [&rows(&data.object_bags, v, &picks)?, &rows(&data.context_bags, v, &picks)?, &rows(&data.prompt_bags, v, &picks)?],
            &rows(&data.targets, 9, &picks)?,
            &rows(&data.backgrounds, 3, &picks)?,
            silhouettes.as_ref(),
        )?;
        let progress = step as f64 / opts.steps as f64;
        adam.set_learning_rate(opts.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())));
        adam.backward_step(&l)?;
        let value = l.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::NonFinite { step: step as u64, loss: value as f64 });
        }
        if step == 0 {
            first = value;
        }
        last = value;
    }

    let check = check(&planner, &examples(&world(Split::Holdout, opts.world_seed)?, &tokenizer, &config, opts.check_scenes)?, looks.as_ref())?;
    let dir = model.join(DIR);
    write_planner(&map, &config, &dir)?;
    index["planner"] = serde_json::json!(["reel", "ReelLayoutPlanner"]);
    let defaults = [
        ("layout_strength", opts.layout_strength.map(|v| serde_json::json!(v))),
        ("layout_first_frame", opts.layout_first_frame.map(|v| serde_json::json!(v))),
        ("layout_guidance", opts.layout_guidance.map(|v| serde_json::json!(v))),
        ("layout_erosion", opts.layout_erosion.map(|v| serde_json::json!(v))),
        ("layout_refine", opts.layout_refine.map(|v| serde_json::json!(v))),
    ];
    for (key, value) in defaults {
        if let Some(value) = value {
            if index.get("reel").is_none() {
                index["reel"] = serde_json::json!({});
            }
            index["reel"][key] = value;
        }
    }
    reel_media::write_atomic(&index_path, serde_json::to_string_pretty(&index).map_err(|e| TrainError::Data(e.to_string()))?.as_bytes())?;
    Ok(PlannerReport { planner: dir, objects: n, skipped_scenes: data.skipped, first_loss: first, loss: last, check })
}

/// How an object is drawn: its shape, and its outline width in 1/50 of an equal-area radius.
type Look = (Shape, Option<u32>);

/// Silhouettes at one grid size, drawn once per look.
struct Silhouettes {
    size: usize,
    drawn: RefCell<HashMap<Look, Rc<Vec<f32>>>>,
}

impl Silhouettes {
    fn new(size: usize) -> Option<Self> {
        (size > 0).then(|| Self { size, drawn: Default::default() })
    }

    fn of(&self, shape: Shape, outline: Option<f64>) -> Rc<Vec<f32>> {
        let key: Look = (shape, outline.map(|w| (w * 50.0).round() as u32));
        let size = self.size;
        self.drawn.borrow_mut().entry(key).or_insert_with(|| Rc::new(silhouette(shape, size, key.1.map(|k| f64::from(k) / 50.0)))).clone()
    }

    fn rows(&self, e: &Examples, picks: &[usize]) -> candle_core::Result<Tensor> {
        let data: Vec<f32> = picks.iter().flat_map(|&i| self.of(e.shapes[i], e.outlines[i]).to_vec()).collect();
        Tensor::from_vec(data, (picks.len(), self.size * self.size), &Device::Cpu)
    }
}

/// Writes the planner folder whole: into a sibling temporary folder, then renamed into place
/// (an old planner is replaced only once the new one is complete).
fn write_planner(map: &VarMap, config: &LayoutPlannerConfig, dir: &Path) -> Result<()> {
    let parent = dir.parent().expect("planner folder has a parent");
    let staging = parent.join(format!(".planner-new-{}", std::process::id()));
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(&staging).map_err(TrainError::io(&staging))?;
        let mut json = serde_json::to_value(config).map_err(|e| TrainError::Data(e.to_string()))?;
        json["_class_name"] = "ReelLayoutPlanner".into();
        let text = serde_json::to_string_pretty(&json).map_err(|e| TrainError::Data(e.to_string()))?;
        std::fs::write(staging.join("config.json"), text).map_err(TrainError::io(&staging))?;
        let tensors: std::collections::HashMap<String, Tensor> = map.data().lock().expect("varmap lock").iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let weights = staging.join(WEIGHTS);
        candle_core::safetensors::save(&tensors, &weights).map_err(|e| TrainError::Data(format!("writing '{}': {e}", weights.display())))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = parent.join(format!(".planner-old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(TrainError::io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(TrainError::io(dir))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn check(planner: &LayoutPlanner, e: &Examples, looks: Option<&Silhouettes>) -> Result<PlannerCheck> {
    let dev = Device::Cpu;
    let v = planner.config().vocab_size;
    let object_bags = Tensor::from_vec(e.object_bags.clone(), (e.len, v), &dev)?;
    let prompt_bags = Tensor::from_vec(e.prompt_bags.clone(), (e.len, v), &dev)?;
    let out: Vec<Vec<f32>> = planner.forward_objects(&object_bags, &Tensor::from_vec(e.context_bags.clone(), (e.len, v), &dev)?)?.to_dtype(DType::F32)?.to_vec2()?;
    let (mut silhouette_error, mut shape_correct) = (None, None);
    if let (Some(logits), Some(looks)) = (planner.forward_silhouettes(&object_bags, &prompt_bags)?, looks) {
        let planned: Vec<Vec<f32>> = candle_nn::ops::sigmoid(&logits)?.to_dtype(DType::F32)?.to_vec2()?;
        let l1 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        let (mut error, mut right) = (0f32, 0usize);
        for ((p, &shape), &outline) in planned.iter().zip(&e.shapes).zip(&e.outlines) {
            error += l1(p, &looks.of(shape, outline));
            // Its own shape's silhouette against the others', drawn the same way.
            let nearest = [Shape::Circle, Shape::Square, Shape::Triangle].into_iter().min_by(|&a, &b| l1(p, &looks.of(a, outline)).total_cmp(&l1(p, &looks.of(b, outline)))).expect("three shapes");
            right += usize::from(nearest == shape);
        }
        silhouette_error = Some(error / e.len.max(1) as f32);
        shape_correct = Some(right as f32 / e.len.max(1) as f32);
    }
    let (mut shift, mut radius, mut colour, mut right, mut alone, mut alone_right) = (0f32, 0f32, 0f32, 0usize, 0usize, 0usize);
    // The larger of the shift (canvas widths) and the change of log radius, with its sign.
    let way = |dx: f32, dy: f32, dr: f32| -> (usize, bool) {
        let m = [dx.abs(), dy.abs(), dr.abs() * 0.5];
        let k = (0..3).max_by(|&a, &b| m[a].total_cmp(&m[b])).expect("three");
        let still = m[k] < 0.05;
        (if still { 3 } else { k }, [dx, dy, dr][k] > 0.0 || still)
    };
    for (i, o) in out.iter().enumerate() {
        let t = &e.targets[i * 9..(i + 1) * 9];
        shift += ((o[7] - t[5]).abs() + (o[8] - t[6]).abs()) / 2.0;
        radius += ((o[9] - t[7]).abs() + (o[10] - t[8]).abs()) / 2.0;
        colour += (0..3).map(|c| (o[c].clamp(0.0, 1.0) - t[c]).abs() * 255.0).sum::<f32>() / 3.0;
        let ok = way(o[7], o[8], o[10] - o[9]) == way(t[5], t[6], t[8] - t[7]);
        right += usize::from(ok);
        if e.alone[i] {
            alone += 1;
            alone_right += usize::from(ok);
        }
    }
    let n = e.len.max(1) as f32;
    Ok(PlannerCheck { objects: e.len, shift_error: shift / n, log_radius_error: radius / n, colour_error: colour / n, direction_correct: right as f32 / n, direction_correct_alone: alone_right as f32 / alone.max(1) as f32, silhouette_error, shape_correct })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouettes_have_the_disc_area_and_their_shape() {
        let size = 20;
        let cell = (2.0 * SILHOUETTE_EXTENT / size as f32).powi(2);
        for shape in [Shape::Circle, Shape::Square, Shape::Triangle] {
            let s = silhouette(shape, size, None);
            let area = s.iter().sum::<f32>() * cell;
            assert!((area - std::f32::consts::PI).abs() < 0.1, "{shape:?}: area {area} in equal-area radii²");
            assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
            assert_eq!(s[0], 0.0, "{shape:?}: the corner is background");
        }
        let row = |s: &[f32], j: usize| s[j * size..(j + 1) * size].iter().sum::<f32>();
        let (square, circle, triangle) = (silhouette(Shape::Square, size, None), silhouette(Shape::Circle, size, None), silhouette(Shape::Triangle, size, None));
        // The square fills its rows evenly; the circle bulges in the middle; the triangle points up.
        assert!((row(&square, 7) - row(&square, 10)).abs() < 1e-4);
        assert!(row(&circle, 10) > row(&circle, 7) + 0.5);
        assert!(row(&triangle, 12) > row(&triangle, 6) + 2.0, "{} {}", row(&triangle, 12), row(&triangle, 6));
        // Outlined: a ring inside the same edge, empty in the middle.
        let ring = silhouette(Shape::Circle, size, Some(0.3));
        let centre = size / 2 * size + size / 2;
        assert_eq!((ring[centre], circle[centre]), (0.0, 1.0));
        let area = ring.iter().sum::<f32>() * cell;
        let pi = std::f32::consts::PI;
        assert!((area - pi * (1.0 - 0.7f32.powi(2))).abs() < 0.1, "ring area {area}");
    }
}
