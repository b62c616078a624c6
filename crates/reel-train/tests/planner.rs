//! `reel train planner`'s fit: on a model folder with Shapes World's vocabulary, a short run
//! learns to plan scenes of held-out (colour, shape, motion) triples — the right way, the
//! right distance — and writes the planner and its model_index entry; a folder it cannot
//! use is refused with nothing written.

use reel_data::{Shape, ShapesWorld, WorldConfig};
use reel_models::text::tokenizer::TextTokenizer;
use reel_train::planner::{silhouette, train_planner, PlannerOptions};

fn model_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let world = ShapesWorld::new(WorldConfig::default()).unwrap();
    let captions: Vec<String> = (0..3000).map(|i| world.sample(i).caption).collect();
    let tok = TextTokenizer::word_level_from_texts(captions.iter().map(String::as_str)).unwrap();
    std::fs::create_dir_all(dir.path().join("tokenizer")).unwrap();
    tok.save(&dir.path().join("tokenizer/tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("model_index.json"), r#"{"_class_name": "WanPipeline"}"#).unwrap();
    dir
}

#[test]
fn a_short_fit_plans_held_out_scenes() {
    let dir = model_folder();
    let opts = PlannerOptions { scenes: 3000, steps: 800, check_scenes: 300, ..Default::default() };
    let report = train_planner(dir.path(), &opts).unwrap();
    let c = &report.check;
    assert!(report.loss < report.first_loss, "{report:?}");
    assert_eq!(report.skipped_scenes, 0, "Shapes World's vocabulary has \"and\": {report:?}");
    assert!(c.direction_correct_alone > 0.9, "held-out one-object scenes planned the right way: {c:?}");
    assert!(c.direction_correct > 0.6, "with cameras and two objects: {c:?}");
    assert!(c.shift_error < 0.12 && c.colour_error < 30.0 && c.log_radius_error < 0.2, "{c:?}");
    assert!(c.shape_correct.unwrap() > 0.9 && c.silhouette_error.unwrap() < 0.1, "held-out objects drawn as their shape: {c:?}");
    assert!(dir.path().join("planner/config.json").is_file() && dir.path().join("planner/model.safetensors").is_file());
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("model_index.json")).unwrap()).unwrap();
    assert_eq!(index["planner"], serde_json::json!(["reel", "ReelLayoutPlanner"]));
    let planner = reel_models::load_layout_planner(dir.path(), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let tok = TextTokenizer::from_file(&dir.path().join("tokenizer/tokenizer.json")).unwrap();
    // Red circle moving left is a held-out triple ((0 + 0 + 3·0) mod 7 = 0); two objects split.
    let plan = planner.plan(&tok.ids("video of a red circle moving left and a blue square moving down on sand").unwrap()).unwrap();
    assert_eq!(plan.objects.len(), 2);
    let [o, p] = [&plan.objects[0], &plan.objects[1]];
    assert!(o.shift[0] < -0.1 && o.shift[0].abs() > 2.0 * o.shift[1].abs(), "left: {o:?}");
    assert!(p.shift[1] > 0.1 && p.shift[1].abs() > 2.0 * p.shift[0].abs(), "down: {p:?}");
    assert!(o.rgb[0] > 0.6 && o.rgb[2] < 0.4 && p.rgb[2] > 0.6, "red, blue: {plan:?}");
    // Each drawn as its shape: nearer its own silhouette than the other's.
    let l1 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>();
    let (circle, square) = (silhouette(Shape::Circle, 20, None), silhouette(Shape::Square, 20, None));
    let (so, sp) = (o.silhouette.as_ref().unwrap(), p.silhouette.as_ref().unwrap());
    assert!(l1(so, &circle) < l1(so, &square) && l1(sp, &square) < l1(sp, &circle), "circle, square");
    // The outlined style is drawn as a ring, for both objects (the style word comes once).
    let centre = 10 * 20 + 10;
    assert!(so[centre] > 0.7, "filled: {}", so[centre]);
    let outlined = planner.plan(&tok.ids("outlined video of a red circle moving left and a blue square moving down on sand").unwrap()).unwrap();
    for o in &outlined.objects {
        let s = o.silhouette.as_ref().unwrap();
        assert!(s[centre] < 0.3 && s.iter().any(|&v| v > 0.7), "a ring: centre {}", s[centre]);
    }
    // No stray folders beside the planner.
    let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with(".planner")), "{names:?}");
}

/// A vocabulary without the separator cannot split two objects' words: those scenes are
/// skipped and counted, one-object scenes still teach; a model index that is not one is
/// refused before anything is written.
#[test]
fn scenes_a_vocabulary_cannot_split_are_skipped_and_bad_folders_refused() {
    let dir = model_folder();
    let world = ShapesWorld::new(WorldConfig::default()).unwrap();
    let captions: Vec<String> = (0..3000).map(|i| world.sample(i).caption.replace(" and ", " ")).collect();
    let tok = TextTokenizer::word_level_from_texts(captions.iter().map(String::as_str)).unwrap();
    assert!(tok.token_id("and").is_none());
    tok.save(&dir.path().join("tokenizer/tokenizer.json")).unwrap();
    let opts = PlannerOptions { scenes: 300, steps: 5, check_scenes: 30, silhouette: 4, ..Default::default() };
    let report = train_planner(dir.path(), &opts).unwrap();
    assert!(report.skipped_scenes > 0 && report.objects > 0, "{report:?}");
    // The planner trains on world seed 1's train split.
    let trained = ShapesWorld::new(WorldConfig { seed: opts.world_seed, ..Default::default() }).unwrap();
    let pairs = (0..300).filter(|&i| trained.scene(i).objects.len() == 2).count();
    assert_eq!((report.skipped_scenes, report.objects), (pairs, 300 - pairs), "{report:?}");

    let dir = model_folder();
    std::fs::write(dir.path().join("model_index.json"), r#"{"reel": 3}"#).unwrap();
    let err = train_planner(dir.path(), &PlannerOptions { scenes: 10, steps: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("is not a model index"), "{err}");
    assert!(!dir.path().join("planner").exists());
}

#[test]
fn a_folder_without_a_tokenizer_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model_index.json"), "{}").unwrap();
    let err = train_planner(dir.path(), &PlannerOptions { scenes: 10, steps: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("tokenizer/tokenizer.json"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(dir.path().join("model_index.json")).unwrap(), "{}");
}
