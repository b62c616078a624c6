//! Prompt adherence: a clip's [`Reading`] against the labels its prompt asked for, and the
//! accuracy, all-correct rate and confusion matrices over a set of clips.

use std::collections::BTreeMap;

use reel_data::{Camera, Color, Mood, Motion, ObjectLabels, SceneLabels, Shape, Style, Theme};
use reel_media::Frame;
use serde::{Deserialize, Serialize};

use crate::image::distance;
use crate::scorer::{analyze, ObjectReading, Reading};

/// An attribute the scorer checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    Color,
    Shape,
    Motion,
    Count,
    Theme,
    Mood,
    Camera,
    Style,
}

impl Attribute {
    pub const ALL: [Attribute; 8] = [Self::Color, Self::Shape, Self::Motion, Self::Count, Self::Theme, Self::Mood, Self::Camera, Self::Style];

    pub fn name(self) -> &'static str {
        match self {
            Self::Color => "color",
            Self::Shape => "shape",
            Self::Motion => "motion",
            Self::Count => "count",
            Self::Theme => "theme",
            Self::Mood => "mood",
            Self::Camera => "camera",
            Self::Style => "style",
        }
    }

    /// Every value the attribute takes, in the spec's order.
    pub fn values(self) -> Vec<String> {
        fn names<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
            all.iter().map(|v| v.to_string()).collect()
        }
        match self {
            Self::Color => names(Color::ALL),
            Self::Shape => names(Shape::ALL),
            Self::Motion => names(Motion::ALL),
            Self::Count => vec!["0".into(), "1".into(), "2".into(), "3+".into()],
            Self::Theme => names(Theme::ALL),
            Self::Mood => names(Mood::ALL),
            Self::Camera => names(Camera::ALL),
            Self::Style => names(Style::ALL),
        }
    }
}

/// The value read for a missing object.
pub const NONE: &str = "none";

/// One checked value: what the prompt asked for and what the pixels show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub attribute: Attribute,
    pub expected: String,
    pub read: String,
}

impl Check {
    pub fn correct(&self) -> bool {
        self.expected == self.read
    }
}

/// A clip's checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipScore {
    pub checks: Vec<Check>,
    pub all_correct: bool,
    pub reading: Reading,
}

/// Reads `frames` and checks every attribute of `labels`.
pub fn score_clip(frames: &[Frame], labels: &SceneLabels) -> ClipScore {
    score_reading(analyze(frames), labels)
}

fn count_name(n: usize) -> String {
    if n >= 3 {
        "3+".into()
    } else {
        n.to_string()
    }
}

/// Checks a reading against labels. Each expected object is paired with the unpaired read
/// object of the same colour, else the one nearest in colour; with none left, it reads "none".
pub fn score_reading(reading: Reading, labels: &SceneLabels) -> ClipScore {
    let mut checks = Vec::new();
    let mut paired = vec![false; reading.objects.len()];
    let partner = |expected: &ObjectLabels, paired: &[bool]| -> Option<usize> {
        let open = || (0..reading.objects.len()).filter(|&i| !paired[i]);
        open().find(|&i| reading.objects[i].color == expected.color).or_else(|| {
            let target = expected.color.rgb().map(f32::from);
            open().min_by(|&a, &b| distance(reading.objects[a].mean_rgb, target).total_cmp(&distance(reading.objects[b].mean_rgb, target)))
        })
    };
    for expected in &labels.objects {
        let read: Option<&ObjectReading> = partner(expected, &paired).map(|i| {
            paired[i] = true;
            &reading.objects[i]
        });
        let value = |f: &dyn Fn(&ObjectReading) -> String| read.map_or_else(|| NONE.to_string(), f);
        checks.push(Check { attribute: Attribute::Color, expected: expected.color.to_string(), read: value(&|o| o.color.to_string()) });
        checks.push(Check { attribute: Attribute::Shape, expected: expected.shape.to_string(), read: value(&|o| o.shape.to_string()) });
        checks.push(Check { attribute: Attribute::Motion, expected: expected.motion.to_string(), read: value(&|o| o.motion.to_string()) });
    }
    checks.push(Check { attribute: Attribute::Count, expected: count_name(labels.objects.len()), read: count_name(reading.objects.len()) });
    checks.push(Check { attribute: Attribute::Theme, expected: labels.theme.to_string(), read: reading.theme.to_string() });
    checks.push(Check { attribute: Attribute::Mood, expected: labels.mood.to_string(), read: reading.mood.to_string() });
    checks.push(Check { attribute: Attribute::Camera, expected: labels.camera.to_string(), read: reading.camera.to_string() });
    checks.push(Check { attribute: Attribute::Style, expected: labels.style.to_string(), read: reading.style.to_string() });
    let all_correct = checks.iter().all(Check::correct);
    ClipScore { checks, all_correct, reading }
}

/// Counts of (expected, read) pairs for one attribute; rows and columns follow `values`
/// (the attribute's values, then "none").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub values: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    fn new(attribute: Attribute) -> Self {
        let mut values = attribute.values();
        values.push(NONE.into());
        let n = values.len();
        Self { values, counts: vec![vec![0; n]; n] }
    }

    fn add(&mut self, expected: &str, read: &str) {
        let index = |v: &str| self.values.iter().position(|x| x == v).unwrap_or(self.values.len() - 1);
        let (e, r) = (index(expected), index(read));
        self.counts[e][r] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}

/// Accuracy over a set of clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Clips scored.
    pub n: usize,
    /// Share of checks right per attribute (0–1); per-object attributes count each object.
    pub accuracy: BTreeMap<String, f64>,
    /// Share of clips with every check right.
    pub all_correct: f64,
    pub confusion: BTreeMap<String, Confusion>,
}

/// Sums clip scores into accuracies and confusion matrices.
pub fn summarize<'a>(scores: impl IntoIterator<Item = &'a ClipScore>) -> Summary {
    let mut confusion: BTreeMap<Attribute, Confusion> = Attribute::ALL.iter().map(|&a| (a, Confusion::new(a))).collect();
    let mut right: BTreeMap<Attribute, (u64, u64)> = BTreeMap::new();
    let (mut n, mut all) = (0usize, 0usize);
    for score in scores {
        n += 1;
        all += score.all_correct as usize;
        for check in &score.checks {
            confusion.get_mut(&check.attribute).expect("every attribute").add(&check.expected, &check.read);
            let e = right.entry(check.attribute).or_default();
            e.0 += check.correct() as u64;
            e.1 += 1;
        }
    }
    let accuracy = right.iter().map(|(a, (r, t))| (a.name().to_string(), *r as f64 / (*t).max(1) as f64)).collect();
    Summary {
        n,
        accuracy,
        all_correct: all as f64 / n.max(1) as f64,
        confusion: confusion.into_iter().map(|(a, c)| (a.name().to_string(), c)).collect(),
    }
}
