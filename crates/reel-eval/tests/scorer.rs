//! The scorer against Shapes World's exact labels, clean and degraded.

use reel_data::{Camera, Color, Mood, Motion, ObjectLabels, SceneLabels, Shape, ShapesWorld, Size, Speed, Split, Style, Theme, WorldConfig};
use reel_eval::robustness::measure;
use reel_eval::{score_clip, summarize, Degradation};
use reel_media::Frame;

fn world() -> ShapesWorld {
    ShapesWorld::new(WorldConfig { split: Split::All, ..Default::default() }).unwrap()
}

#[test]
fn ground_truth_clips_score_right() {
    let conditions = vec![("clean".to_string(), None), ("blur".to_string(), Some(Degradation::Blur { sigma: 1.0 }))];
    let results = measure(&world(), 96, &conditions, 2).unwrap();
    let clean = &results[0];
    assert_eq!(clean.summary.n, 96);
    // The spec's case (flat style) is read perfectly; pixel art at 64×64 is an 8×8 image and
    // outlined small triangles look filled, so the whole set is a little lower.
    for attribute in ["color", "shape", "motion", "camera", "count", "theme", "mood"] {
        let flat = clean.by_style["flat"].accuracy[attribute];
        assert!(flat >= 0.99, "flat {attribute}: {flat}");
    }
    for (attribute, least) in [("color", 0.95), ("shape", 0.8), ("motion", 0.8), ("count", 0.93), ("theme", 0.95), ("mood", 0.95), ("style", 0.95)] {
        let all = clean.summary.accuracy[attribute];
        assert!(all >= least, "{attribute}: {all} < {least}");
    }
    let blurred = &results[1].by_style["flat"];
    for attribute in ["color", "shape", "motion"] {
        assert!(blurred.accuracy[attribute] >= 0.95, "blurred flat {attribute}: {}", blurred.accuracy[attribute]);
    }
}

fn labels(color: Color, shape: Shape, motion: Motion) -> SceneLabels {
    SceneLabels {
        objects: vec![ObjectLabels { color, shape, size: Size::Medium, motion, speed: Some(Speed::Normal) }],
        theme: Theme::Black,
        camera: Camera::Static,
        style: Style::Flat,
        mood: Mood::Neutral,
    }
}

#[test]
fn an_empty_clip_is_wrong_on_every_object_attribute() {
    let frames = vec![Frame::filled(64, 64, [20, 20, 20]); 9];
    let score = score_clip(&frames, &labels(Color::Red, Shape::Circle, Motion::Right));
    assert!(!score.all_correct);
    for check in &score.checks {
        match check.attribute.name() {
            "color" | "shape" | "motion" => assert_eq!(check.read, "none"),
            "count" => assert_eq!((check.expected.as_str(), check.read.as_str()), ("1", "0")),
            "theme" => assert_eq!(check.read, "black"),
            "camera" => assert_eq!(check.read, "static"),
            _ => {}
        }
    }
}

#[test]
fn a_wrong_clip_is_caught_and_counted_in_the_confusion_matrix() {
    // Clip 0 drawn, then scored against labels asking for another colour and shape.
    let world = world();
    let clip = world.clip(3);
    let mut asked = clip.labels.clone();
    let actual = asked.objects[0];
    asked.objects[0].color = if actual.color == Color::Red { Color::Blue } else { Color::Red };
    asked.objects[0].shape = if actual.shape == Shape::Circle { Shape::Square } else { Shape::Circle };
    let right = score_clip(&clip.frames, &clip.labels);
    let wrong = score_clip(&clip.frames, &asked);
    assert!(right.all_correct, "{:?}", right.checks);
    assert!(!wrong.all_correct);
    let summary = summarize([&right, &wrong]);
    assert_eq!(summary.n, 2);
    assert_eq!(summary.all_correct, 0.5);
    let objects = clip.labels.objects.len() as f64;
    assert_eq!(summary.accuracy["color"], (objects + objects - 1.0) / (2.0 * objects));
    let colours = &summary.confusion["color"];
    let row = colours.values.iter().position(|v| *v == asked.objects[0].color.to_string()).unwrap();
    let col = colours.values.iter().position(|v| *v == actual.color.to_string()).unwrap();
    assert_eq!(colours.counts[row][col], 1, "asked {} read {}", asked.objects[0].color, actual.color);
    assert_eq!(colours.total(), 2 * clip.labels.objects.len() as u64);
}
