//! The paraphrase prompts shapes-v1 is evaluated on (`configs/eval/paraphrases.jsonl`): each
//! says its labelled colour, shape and motion in words outside Shapes World's caption lists,
//! and the synonym table maps them back onto those lists.

use reel_data::caption::{motion_words, shape_words};
use reel_data::{is_held_out, Motion, SceneLabels};
use reel_pipelines::synonyms::normalize;
use std::collections::HashSet;

#[derive(serde::Deserialize)]
struct Line {
    caption: String,
    labels: SceneLabels,
    held_out: bool,
}

/// Every word Shapes World captions use (a stand-in for the model's vocabulary).
fn caption_words() -> HashSet<String> {
    let world = reel_data::ShapesWorld::new(reel_data::WorldConfig::default()).unwrap();
    (0..4000).flat_map(|i| world.sample(i).caption.split(|c: char| !c.is_alphanumeric()).map(str::to_lowercase).collect::<Vec<_>>()).collect()
}

#[test]
fn paraphrases_map_onto_their_labels() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/eval/paraphrases.jsonl");
    let text = std::fs::read_to_string(path).expect("the paraphrase set is committed");
    let vocab = caption_words();
    let known = |w: &str| vocab.contains(w);
    let lines: Vec<Line> = text.lines().map(|l| serde_json::from_str(l).expect("caption, labels, held_out")).collect();
    assert!(lines.len() >= 32);
    let mut held = 0;
    for line in &lines {
        let object = &line.labels.objects[0];
        assert_eq!(line.held_out, is_held_out(object.color, object.shape, object.motion), "{}", line.caption);
        held += usize::from(line.held_out);
        let (text, replaced) = normalize(&line.caption, known);
        assert!(!replaced.is_empty(), "'{}' uses only caption words: not a paraphrase", line.caption);
        let words: Vec<&str> = text.split(' ').collect();
        assert!(words.contains(&object.color.to_string().as_str()), "'{text}' lacks the colour {}", object.color);
        assert!(shape_words(object.shape).iter().any(|w| words.contains(w)), "'{text}' lacks a word for {:?}", object.shape);
        let motion_said = match object.motion {
            Motion::Still => words.contains(&"still"),
            m => motion_words(m).iter().any(|p| text.contains(p)),
        };
        assert!(motion_said, "'{text}' lacks a phrase for {:?}", object.motion);
    }
    assert!(held >= 24, "every held-out triple is paraphrased ({held})");
}
