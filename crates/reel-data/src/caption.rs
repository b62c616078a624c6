//! Captions built from labels with seeded, varied phrasings (the spec's word lists).
//!
//! Shape: `[mood] [style] video of <object>[ and <object>] <theme>[, <camera>]`,
//! `<object>` = `a [size] <colour> <shape> <motion>[ <speed>]`. The article is
//! "an" before a vowel ("an orange ball"), where the spec's template writes "a".

use crate::labels::{Camera, Color, Mood, Motion, ObjectLabels, SceneLabels, Shape, Size, Speed, Style, Theme};
use crate::rng::Rng;

/// The phrasings of each label value ("" = the label may go unsaid).
pub fn shape_words(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Circle => &["circle", "ball", "disc"],
        Shape::Square => &["square", "box", "block"],
        Shape::Triangle => &["triangle"],
    }
}

pub fn motion_words(motion: Motion) -> &'static [&'static str] {
    match motion {
        Motion::Left => &["moving left", "moving to the left", "sliding left"],
        Motion::Right => &["moving right", "moving to the right", "sliding right"],
        Motion::Up => &["moving up", "rising", "floating up"],
        Motion::Down => &["moving down", "falling", "sinking"],
        Motion::Still => &["standing still", "resting", "not moving"],
        Motion::Grow => &["growing", "getting bigger", "expanding"],
        Motion::Shrink => &["shrinking", "getting smaller"],
    }
}

pub fn speed_words(speed: Speed) -> &'static [&'static str] {
    match speed {
        Speed::Slow => &["slowly"],
        Speed::Normal => &[""],
        Speed::Fast => &["quickly", "fast"],
    }
}

pub fn size_words(size: Size) -> &'static [&'static str] {
    match size {
        Size::Small => &["small", "tiny"],
        Size::Medium => &[""],
        Size::Large => &["large", "big"],
    }
}

pub fn theme_words(theme: Theme) -> &'static [&'static str] {
    match theme {
        Theme::Black => &["on a black background"],
        Theme::Gray => &["on a gray background"],
        Theme::Night => &["at night", "under a night sky"],
        Theme::Sand => &["on sand", "on a sandy background"],
    }
}

pub fn camera_words(camera: Camera) -> &'static [&'static str] {
    match camera {
        Camera::Static => &["", "static camera"],
        Camera::PanLeft => &["the camera pans left"],
        Camera::PanRight => &["the camera pans right"],
        Camera::ZoomIn => &["the camera zooms in"],
        Camera::ZoomOut => &["the camera zooms out"],
    }
}

pub fn style_words(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["", "flat"],
        Style::Outline => &["outlined", "line-art"],
        Style::Pixel => &["pixel-art", "pixelated"],
    }
}

pub fn mood_words(mood: Mood) -> &'static [&'static str] {
    match mood {
        Mood::Neutral => &[""],
        Mood::Cheerful => &["cheerful", "bright"],
        Mood::Gloomy => &["gloomy", "dark"],
    }
}

pub fn color_word(color: Color) -> &'static str {
    color.name()
}

fn push(words: &mut Vec<String>, phrase: &str) {
    if !phrase.is_empty() {
        words.push(phrase.to_string());
    }
}

fn object_phrase(rng: &mut Rng, o: &ObjectLabels) -> String {
    let mut words = Vec::new();
    push(&mut words, rng.choose(size_words(o.size)));
    push(&mut words, color_word(o.color));
    push(&mut words, rng.choose(shape_words(o.shape)));
    push(&mut words, rng.choose(motion_words(o.motion)));
    if let Some(speed) = o.speed {
        push(&mut words, rng.choose(speed_words(speed)));
    }
    let article = if words[0].starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {}", words.join(" "))
}

/// Every phrase a caption can contain, template words included: what a word-level
/// vocabulary for Shapes World needs (split it as the tokenizer does).
pub fn phrases() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec!["a", "an", "and", "video of", ","];
    out.extend(Shape::ALL.iter().flat_map(|&v| shape_words(v)));
    out.extend(Motion::ALL.iter().flat_map(|&v| motion_words(v)));
    out.extend(Speed::ALL.iter().flat_map(|&v| speed_words(v)));
    out.extend(Size::ALL.iter().flat_map(|&v| size_words(v)));
    out.extend(Theme::ALL.iter().flat_map(|&v| theme_words(v)));
    out.extend(Camera::ALL.iter().flat_map(|&v| camera_words(v)));
    out.extend(Style::ALL.iter().flat_map(|&v| style_words(v)));
    out.extend(Mood::ALL.iter().flat_map(|&v| mood_words(v)));
    out.extend(Color::ALL.iter().map(|&v| color_word(v)));
    out.retain(|p| !p.is_empty());
    out
}

/// A caption for `labels`, its phrasing drawn from `rng`.
pub fn caption(rng: &mut Rng, labels: &SceneLabels) -> String {
    let mut words = Vec::new();
    push(&mut words, rng.choose(mood_words(labels.mood)));
    push(&mut words, rng.choose(style_words(labels.style)));
    words.push("video of".into());
    let objects: Vec<String> = labels.objects.iter().map(|o| object_phrase(rng, o)).collect();
    words.push(objects.join(" and "));
    push(&mut words, rng.choose(theme_words(labels.theme)));
    let mut text = words.join(" ");
    let camera = rng.choose(camera_words(labels.camera));
    if !camera.is_empty() {
        text.push_str(", ");
        text.push_str(camera);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_can_be_produced() {
        let labels = SceneLabels {
            objects: vec![ObjectLabels { color: Color::Red, shape: Shape::Circle, size: Size::Small, motion: Motion::Right, speed: Some(Speed::Fast) }],
            theme: Theme::Night,
            camera: Camera::PanLeft,
            style: Style::Pixel,
            mood: Mood::Gloomy,
        };
        let want = "gloomy pixel-art video of a small red circle moving right quickly at night, the camera pans left";
        let found = (0..2000).any(|i| caption(&mut Rng::new(i), &labels) == want);
        assert!(found, "never produced: {want}");
    }

    #[test]
    fn phrases_cover_every_caption() {
        let all = phrases().join(" ");
        let known: std::collections::HashSet<&str> = all.split([' ', ',']).collect();
        let world = crate::ShapesWorld::new(crate::WorldConfig::default()).unwrap();
        for i in 0..3000 {
            let c = world.sample(i).caption;
            for w in c.split([' ', ',']).filter(|w| !w.is_empty()) {
                assert!(known.contains(w), "'{w}' of '{c}' is missing from phrases()");
            }
        }
    }

    #[test]
    fn orange_takes_an() {
        let labels = SceneLabels {
            objects: vec![ObjectLabels { color: Color::Orange, shape: Shape::Square, size: Size::Medium, motion: Motion::Still, speed: None }],
            theme: Theme::Black,
            camera: Camera::Static,
            style: Style::Flat,
            mood: Mood::Neutral,
        };
        let text = caption(&mut Rng::new(3), &labels);
        assert!(text.contains("an orange"), "{text}");
        assert!(text.starts_with("video of") || text.starts_with("flat video of"), "{text}");
    }
}
