//! Requests: a prompt in plain text or a JSON object → checked generation settings
//! (docs/generate.md).
//!
//! Plain text is read for what it states — a duration ("3 seconds"), a frame rate ("at 12
//! fps"), a frame count ("17 frames"), a size ("128x128", "square video"), a style, a camera
//! motion, a mood, a theme — and those phrases leave the text; what remains is the content.
//! Explicit JSON fields win over the text. The prompt the model sees is composed in the
//! shape of Reel's training captions: `[mood] [style] video of <content> [theme][, camera]`.
//! Every check happens here, before any model runs.

use std::collections::BTreeMap;

use reel_data::caption::{camera_words, mood_words, style_words, theme_words};
use reel_data::{Camera, Mood, Style, Theme};
use reel_media::VideoFormat;
use serde::{Deserialize, Serialize};

/// A request as JSON. Every field but `prompt` is optional; unknown fields are errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Seconds; with `fps` it gives the frame count (rounded to the nearest one the model makes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f64>,
    /// Steps that make the first frame before the clip is made from it (0: the whole clip at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_frame_steps: Option<u32>,
    /// With a model that has a layout planner: the noise level (0–1) its planned layout is
    /// noised to before denoising; 0 generates from noise alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_strength: Option<f64>,
    /// With a layout: make the clip twice, the second time from the first's first frame with
    /// the planned objects put back as painted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_first_frame: Option<bool>,
    /// With a layout: how far (0–1) each step is pulled toward it, fading as it goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_guidance: Option<f64>,
    /// With a layout: the pixels (0–8) the model's VAE wears off an object's edge by a
    /// clip's last frame, made up by painting the layout's objects wider over the clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_erosion: Option<f64>,
    /// With a layout: how many times (0–4) the painted layout goes through the model's VAE
    /// and each object's outline is corrected by what the round trip lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout_refine: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Request {
    /// A request from JSON text, with serde's message (which lists the accepted fields for
    /// an unknown one) on failure.
    pub fn from_json(text: &str) -> Result<Self, RequestError> {
        serde_json::from_str(text).map_err(|e| RequestError::new("request", format!("not a valid request: {e}"), "a JSON object with \"prompt\" and any of the fields in docs/generate.md"))
    }

    /// A request holding only a prompt.
    pub fn text(prompt: &str) -> Self {
        Self { prompt: prompt.to_string(), ..Default::default() }
    }
}

/// A request that cannot be made, naming the field, the problem and what is accepted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message} (accepted: {accepted})")]
pub struct RequestError {
    pub field: String,
    pub message: String,
    pub accepted: String,
}

impl RequestError {
    fn new(field: &str, message: impl Into<String>, accepted: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), accepted: accepted.into() }
    }
}

/// What a model makes by default and what it can make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: f64,
    pub steps: u32,
    pub guidance: f64,
    /// Steps of a first pass that makes the first frame (0: none; models trained with
    /// first-frame conditioning set it).
    #[serde(default)]
    pub first_frame_steps: u32,
    /// The layout strength requests get by default (0 for models without a planner).
    #[serde(default)]
    pub layout_strength: f64,
    /// Whether requests with a layout make its first frame first by default.
    #[serde(default)]
    pub layout_first_frame: bool,
    /// The layout guidance requests get by default.
    #[serde(default)]
    pub layout_guidance: f64,
    /// The layout erosion (pixels) requests get by default.
    #[serde(default)]
    pub layout_erosion: f64,
    /// The round trips through the VAE that refine a layout's outlines by default.
    #[serde(default)]
    pub layout_refine: u32,
    /// Whether the model has a layout planner.
    #[serde(default)]
    pub planner: bool,
    pub negative_prompt: String,
    pub scheduler: SchedulerKind,
    /// Width and height must be multiples of this (VAE ratio × patch size).
    pub size_multiple: u32,
    /// Frame counts are `1 + frame_multiple·k`.
    pub frame_multiple: u32,
}

/// The sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerKind {
    Euler,
    Unipc,
}

impl SchedulerKind {
    pub const NAMES: &'static str = "euler (flow-matching Euler), unipc (UniPC multistep)";

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "euler" | "flow-match-euler" | "flowmatcheulerdiscretescheduler" => Some(Self::Euler),
            "unipc" | "uni-pc" | "unipcmultistepscheduler" => Some(Self::Unipc),
            _ => None,
        }
    }
}

/// Most frames one request may ask for, and the frame-rate range.
pub const MAX_FRAMES: u32 = 1025;
pub const FPS_RANGE: (f64, f64) = (1.0, 120.0);
pub const MAX_STEPS: u32 = 500;
pub const MAX_GUIDANCE: f64 = 30.0;
/// The largest `layout_erosion`, pixels: a latent cell of an 8× VAE.
pub const MAX_LAYOUT_EROSION: f64 = 8.0;
/// The most round trips through the VAE `layout_refine` may ask for: each costs a VAE encode
/// and decode of the whole clip, and the outlines change little after the first.
pub const MAX_LAYOUT_REFINE: u32 = 4;

/// A checked request: everything the pipeline and the writer need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The prompt as given.
    pub prompt_given: String,
    /// The prompt the model sees.
    pub prompt: String,
    /// What the prompt shows, without the settings it stated (the default file name's words).
    pub content: String,
    pub negative_prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<Style>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<Camera>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mood: Option<Mood>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theme: Option<Theme>,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: f64,
    pub format: VideoFormat,
    pub seed: u64,
    pub steps: u32,
    pub guidance: f64,
    /// Steps of the pass that makes the first frame before the clip (0: the clip at once).
    #[serde(default)]
    pub first_frame_steps: u32,
    /// The noise level the planned layout is noised to (0: no layout, from noise).
    #[serde(default)]
    pub layout_strength: f64,
    /// Whether the layout's first frame is made first and the clip from it.
    #[serde(default)]
    pub layout_first_frame: bool,
    /// How far each step is pulled toward the layout (0: not at all).
    #[serde(default)]
    pub layout_guidance: f64,
    /// The pixels of an object's edge the layout makes up for by the last frame (0: none).
    #[serde(default)]
    pub layout_erosion: f64,
    /// Round trips through the VAE that refine the layout's outlines (0: none).
    #[serde(default)]
    pub layout_refine: u32,
    pub scheduler: SchedulerKind,
    /// Where each setting came from: "request" (a JSON field or a command-line flag), "text" (read from the prompt) or "default" (the model's).
    pub sources: BTreeMap<String, String>,
    /// Adjustments worth telling the user (a duration rounded to a frame count, …).
    pub notes: Vec<String>,
}

/// What plain text states.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stated {
    pub duration: Option<f64>,
    pub fps: Option<f64>,
    pub frames: Option<u32>,
    pub size: Option<SizeStated>,
    pub style: Option<Style>,
    pub camera: Option<Camera>,
    pub mood: Option<Mood>,
    pub theme: Option<Theme>,
    /// The text without the phrases above (and without "video of").
    pub content: String,
}

/// A size stated in text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeStated {
    Exact(u32, u32),
    /// An aspect ratio (width, height): "square", "landscape", "portrait".
    Aspect(u32, u32),
}

const NUMBER_WORDS: [&str; 13] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
const SECOND_UNITS: [&str; 5] = ["s", "sec", "secs", "second", "seconds"];
const FRAME_WORDS: [&str; 2] = ["frame", "frames"];
const SIZE_NOUNS: [&str; 8] = ["video", "videos", "clip", "format", "frame", "aspect", "resolution", "ratio"];
/// Words left dangling when a setting phrase is cut out ("… right, at 12 fps" → "… right").
const CONNECTORS: [&str; 9] = ["at", "in", "with", "for", "and", "of", "lasting", "long", "a"];

fn number(word: &str) -> Option<f64> {
    word.parse::<f64>().ok().filter(|v| v.is_finite()).or_else(|| NUMBER_WORDS.iter().position(|w| *w == word).map(|i| i as f64))
}

/// The words of a text (lower case), each with its byte span; hyphens and decimal points
/// stay inside words, other punctuation is its own word.
fn words(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let inside = c.is_alphanumeric() || c == '-' || c == '.' && start.is_some() && text[i + 1..].starts_with(|d: char| d.is_ascii_digit()) || c == '×';
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((text[s..i].to_lowercase(), s, i));
                start = None;
            }
            _ => {}
        }
        if !inside && !c.is_whitespace() {
            out.push((c.to_string(), i, i + c.len_utf8()));
        }
    }
    if let Some(s) = start {
        out.push((text[s..].to_lowercase(), s, text.len()));
    }
    out
}

/// Label phrases to look for, longest first: (words, setter).
fn label_phrases() -> Vec<(Vec<String>, Label)> {
    let mut out: Vec<(Vec<String>, Label)> = Vec::new();
    let mut add = |phrases: &[&str], label: Label| {
        for p in phrases.iter().filter(|p| !p.is_empty()) {
            out.push((p.split(' ').map(str::to_string).collect(), label));
        }
    };
    for &s in Style::ALL {
        add(style_words(s), Label::Style(s));
    }
    for &c in Camera::ALL {
        add(camera_words(c), Label::Camera(c));
    }
    for &m in Mood::ALL {
        add(mood_words(m), Label::Mood(m));
    }
    for &t in Theme::ALL {
        add(theme_words(t), Label::Theme(t));
    }
    // A few more ways of saying them.
    add(&["pixel art", "8-bit"], Label::Style(Style::Pixel));
    add(&["line art", "outline"], Label::Style(Style::Outline));
    add(&["camera pans left", "panning left", "pan left"], Label::Camera(Camera::PanLeft));
    add(&["camera pans right", "panning right", "pan right"], Label::Camera(Camera::PanRight));
    add(&["camera zooms in", "zooming in", "zoom in"], Label::Camera(Camera::ZoomIn));
    add(&["camera zooms out", "zooming out", "zoom out"], Label::Camera(Camera::ZoomOut));
    add(&["still camera", "fixed camera"], Label::Camera(Camera::Static));
    add(&["on black", "black background"], Label::Theme(Theme::Black));
    add(&["on gray", "on grey", "gray background", "grey background", "on a grey background"], Label::Theme(Theme::Gray));
    add(&["night sky", "by night"], Label::Theme(Theme::Night));
    add(&["sandy", "on the sand", "sand background"], Label::Theme(Theme::Sand));
    add(&["happy"], Label::Mood(Mood::Cheerful));
    add(&["sad", "moody"], Label::Mood(Mood::Gloomy));
    out.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
    out
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Style(Style),
    Camera(Camera),
    Mood(Mood),
    Theme(Theme),
}

/// Reads what a plain-text prompt states.
pub fn read_text(text: &str) -> Stated {
    let w = words(text);
    let n = w.len();
    let word = |i: usize| w.get(i).map_or("", |x| x.0.as_str());
    let mut cut = vec![false; n];
    let mut stated = Stated::default();
    let phrases = label_phrases();
    let mut i = 0;
    while i < n {
        let mut used = 0;
        let this = word(i);
        // "3 seconds", "3s", "3-second", "2.5 sec".
        if let Some(v) = number(this) {
            let next = word(i + 1);
            if SECOND_UNITS.contains(&next) {
                stated.duration = Some(v);
                used = 2;
            } else if next == "fps" || (FRAME_WORDS.contains(&next) && (word(i + 2) == "per" || word(i + 2) == "a") && word(i + 3) == "second") {
                stated.fps = Some(v);
                used = if next == "fps" { 2 } else { 4 };
            } else if FRAME_WORDS.contains(&next) {
                stated.frames = Some(v as u32).filter(|_| v.fract() == 0.0 && v >= 0.0);
                used = 2;
            } else if (next == "x" || next == "×") && number(word(i + 2)).is_some() {
                stated.size = Some(SizeStated::Exact(v as u32, number(word(i + 2)).unwrap_or(0.0) as u32));
                used = 3;
            }
        } else if let Some((v, unit)) = split_number(this) {
            if SECOND_UNITS.contains(&unit) || unit.strip_prefix('-').is_some_and(|u| SECOND_UNITS.contains(&u)) {
                stated.duration = Some(v);
                used = 1;
            } else if unit == "fps" || unit == "-fps" {
                stated.fps = Some(v);
                used = 1;
            } else if let Some((a, b)) = unit.strip_prefix(['x', '×']).and_then(|b| b.parse::<u32>().ok()).map(|b| (v, b)) {
                stated.size = Some(SizeStated::Exact(a as u32, b));
                used = 1;
            }
        } else if matches!(this, "square" | "landscape" | "widescreen" | "portrait" | "vertical") {
            // "square" is also a shape: it is a size only as "square video/format/…" or "in square".
            let as_size = SIZE_NOUNS.contains(&word(i + 1)) || (i > 0 && word(i - 1) == "in") || this != "square";
            if as_size {
                stated.size = Some(match this {
                    "square" => SizeStated::Aspect(1, 1),
                    "portrait" | "vertical" => SizeStated::Aspect(9, 16),
                    _ => SizeStated::Aspect(16, 9),
                });
                used = if SIZE_NOUNS.contains(&word(i + 1)) && word(i + 1) != "video" && word(i + 1) != "videos" && word(i + 1) != "clip" { 2 } else { 1 };
            }
        }
        if used == 0 {
            if let Some((len, label)) = phrases.iter().find(|(p, _)| p.iter().enumerate().all(|(k, pw)| word(i + k) == pw)).map(|(p, l)| (p.len(), *l)) {
                match label {
                    Label::Style(s) => stated.style = Some(s),
                    Label::Camera(c) => stated.camera = Some(c),
                    Label::Mood(m) => stated.mood = Some(m),
                    Label::Theme(t) => stated.theme = Some(t),
                }
                used = len;
                // "pixel-art style", "flat style".
                if matches!(label, Label::Style(_)) && word(i + len) == "style" {
                    used += 1;
                }
                // "the camera pans left": take the article too.
                if i > 0 && word(i - 1) == "the" && matches!(label, Label::Camera(_)) {
                    cut[i - 1] = true;
                }
            } else if this == "video" && word(i + 1) == "of" || this == "clip" && word(i + 1) == "of" {
                used = 2;
                if i > 0 && matches!(word(i - 1), "a" | "an") {
                    cut[i - 1] = true;
                }
            }
        }
        if used > 0 {
            cut[i..(i + used).min(n)].iter_mut().for_each(|c| *c = true);
            i += used;
        } else {
            i += 1;
        }
    }
    stated.content = remaining(&w, &cut);
    stated
}

/// "12fps" → (12, "fps"); "3-second" → (3, "-second"); "128x96" → (128, "x96").
fn split_number(word: &str) -> Option<(f64, &str)> {
    let end = word.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    if end == 0 {
        return None;
    }
    Some((word[..end].parse().ok()?, &word[end..]))
}

/// The words not cut, re-joined, with connectors and punctuation left dangling removed.
fn remaining(w: &[(String, usize, usize)], cut: &[bool]) -> String {
    let mut kept: Vec<&str> = w.iter().zip(cut).filter(|(_, &c)| !c).map(|(x, _)| x.0.as_str()).collect();
    // "a 3-second video of a red circle" leaves "a a red circle": keep the second article.
    let article = |w: &str| matches!(w, "a" | "an");
    let mut i = 0;
    while i + 1 < kept.len() {
        if article(kept[i]) && article(kept[i + 1]) {
            kept.remove(i);
        } else {
            i += 1;
        }
    }
    // Split into comma-separated pieces; drop pieces that are only connectors or empty.
    let mut pieces: Vec<Vec<&str>> = vec![Vec::new()];
    for word in kept {
        if matches!(word, "," | ";" | "." | "!") {
            pieces.push(Vec::new());
        } else {
            pieces.last_mut().expect("one piece").push(word);
        }
    }
    let pieces: Vec<String> = pieces
        .into_iter()
        .map(|mut p| {
            while p.last().is_some_and(|w| CONNECTORS.contains(w)) {
                p.pop();
            }
            while p.first().is_some_and(|w| CONNECTORS.contains(w) && *w != "a") {
                p.remove(0);
            }
            p.join(" ")
        })
        .filter(|p| !p.is_empty() && !CONNECTORS.contains(&p.as_str()))
        .collect();
    pieces.join(", ")
}

fn label_value<T: Copy + std::str::FromStr<Err = String>>(field: &str, given: &str, all: &[T], phrases: fn(T) -> &'static [&'static str], name: fn(T) -> &'static str) -> Result<T, RequestError> {
    let key = given.trim().to_lowercase();
    if let Ok(v) = key.parse::<T>() {
        return Ok(v);
    }
    if let Some(v) = all.iter().copied().find(|&v| phrases(v).iter().any(|p| !p.is_empty() && *p == key)) {
        return Ok(v);
    }
    let names: Vec<&str> = all.iter().map(|&v| name(v)).collect();
    Err(RequestError::new(field, format!("unknown {field} '{given}'"), names.join(", ")))
}

/// Where a setting came from.
fn source(request: bool, text: bool) -> &'static str {
    if request {
        "request"
    } else if text {
        "text"
    } else {
        "default"
    }
}

/// A label from the request's field (which wins) or the text, with its source recorded.
fn label<T: Copy + std::str::FromStr<Err = String>>(
    field: &str,
    given: &Option<String>,
    stated: Option<T>,
    all: &[T],
    phrases: fn(T) -> &'static [&'static str],
    name: fn(T) -> &'static str,
    sources: &mut BTreeMap<String, String>,
) -> Result<Option<T>, RequestError> {
    sources.insert(field.to_string(), source(given.is_some(), stated.is_some()).to_string());
    match given {
        Some(g) => label_value(field, g, all, phrases, name).map(Some),
        None => Ok(stated),
    }
}

/// The phrase a label is written with in the composed prompt (its first non-empty caption phrasing).
fn phrase(phrases: &'static [&'static str]) -> Option<&'static str> {
    phrases.iter().copied().find(|p| !p.is_empty())
}

/// Nearest counts `1 + m·k` below and above `frames`.
fn nearest_frames(frames: u32, m: u32) -> (u32, u32) {
    let k = frames.saturating_sub(1) / m;
    (1 + m * k, 1 + m * (k + 1))
}

/// Checks a request against a model and fills in the rest from its defaults; `output_format`
/// is the format an output path's extension names, if any.
pub fn resolve(req: &Request, spec: &ModelSpec, output_format: Option<VideoFormat>) -> Result<Resolved, RequestError> {
    if req.prompt.trim().is_empty() {
        return Err(RequestError::new("prompt", "is empty", "any non-empty text"));
    }
    let stated = read_text(&req.prompt);
    let mut sources = BTreeMap::new();
    let mut notes = Vec::new();
    let style = label("style", &req.style, stated.style, Style::ALL, style_words, Style::name, &mut sources)?;
    let camera = label("camera", &req.camera, stated.camera, Camera::ALL, camera_words, Camera::name, &mut sources)?;
    let mood = label("mood", &req.mood, stated.mood, Mood::ALL, mood_words, Mood::name, &mut sources)?;
    let theme = label("theme", &req.theme, stated.theme, Theme::ALL, theme_words, Theme::name, &mut sources)?;
    let mut pick = |name: &str, json: bool, text: bool| {
        sources.insert(name.to_string(), source(json, text).to_string());
    };

    // Frame rate.
    let fps = req.fps.or(stated.fps).unwrap_or(spec.fps);
    pick("fps", req.fps.is_some(), stated.fps.is_some());
    if !(fps.is_finite() && (FPS_RANGE.0..=FPS_RANGE.1).contains(&fps)) {
        return Err(RequestError::new("fps", format!("{fps} frames per second is out of range"), format!("{} to {}", FPS_RANGE.0, FPS_RANGE.1)));
    }

    // Size.
    let m = spec.size_multiple;
    let side_range = format!("multiples of {m} from {} to {}", m.max(reel_media::MIN_SIDE), reel_media::MAX_SIDE - reel_media::MAX_SIDE % m);
    let (width, height) = match (req.width, req.height, stated.size) {
        (Some(w), Some(h), _) => (w, h),
        (Some(w), None, size) => (w, size_from_text(size, spec).1),
        (None, Some(h), size) => (size_from_text(size, spec).0, h),
        (None, None, size) => size_from_text(size, spec),
    };
    pick("width", req.width.is_some(), stated.size.is_some());
    pick("height", req.height.is_some(), stated.size.is_some());
    for (field, v) in [("width", width), ("height", height)] {
        if v % m != 0 || v < m.max(reel_media::MIN_SIDE) || v > reel_media::MAX_SIDE {
            let below = (v / m * m).max(m);
            let nearest = if v % m == 0 { String::new() } else { format!("; nearest: {below} or {}", below + m) };
            return Err(RequestError::new(field, format!("{v} pixels cannot be made by this model{nearest}"), side_range.clone()));
        }
    }

    // Frames: JSON frames, JSON duration, text frames, text duration, default.
    let fm = spec.frame_multiple;
    let accepted_frames = format!("1 + {fm}·k frames, up to {MAX_FRAMES} (e.g. 1, {}, {}, {})", 1 + fm, 1 + 2 * fm, 1 + 4 * fm);
    if req.frames.is_some() && req.duration.is_some() {
        return Err(RequestError::new("frames", "both frames and duration are given", "one of them"));
    }
    let exact = req.frames.or(if req.duration.is_none() { stated.frames } else { None });
    let duration = if exact.is_none() { req.duration.or(stated.duration) } else { None };
    let frames = match (exact, duration) {
        (Some(f), _) => {
            if f == 0 || f > MAX_FRAMES || (f - 1) % fm != 0 {
                let (lo, hi) = nearest_frames(f.clamp(1, MAX_FRAMES), fm);
                let nearest = if f < lo || hi > MAX_FRAMES { lo.to_string() } else { format!("{lo} or {hi}") };
                return Err(RequestError::new("frames", format!("{f} frames cannot be made by this model; nearest: {nearest}"), accepted_frames));
            }
            f
        }
        (None, Some(d)) => {
            if !(d.is_finite() && d > 0.0) || d * fps + 1.0 > MAX_FRAMES as f64 {
                return Err(RequestError::new("duration", format!("{d} seconds at {fps} fps is out of range"), format!("more than 0 and at most {:.1} seconds at {fps} fps", (MAX_FRAMES - 1) as f64 / fps)));
            }
            let wanted = d * fps + 1.0;
            let k = ((wanted - 1.0) / fm as f64).round().max(1.0) as u32;
            let f = 1 + fm * k;
            notes.push(format!("{d} s at {fps} fps is {wanted:.0} frames; this model makes 1 + {fm}·k, so {f} frames ({:.2} s)", (f - 1) as f64 / fps));
            f
        }
        (None, None) => spec.frames,
    };
    pick("frames", req.frames.is_some() || req.duration.is_some(), stated.frames.is_some() || stated.duration.is_some());

    // Sampling.
    let steps = req.steps.unwrap_or(spec.steps);
    pick("steps", req.steps.is_some(), false);
    if steps == 0 || steps > MAX_STEPS {
        return Err(RequestError::new("steps", format!("{steps} denoising steps is out of range"), format!("1 to {MAX_STEPS}")));
    }
    let guidance = req.guidance.unwrap_or(spec.guidance);
    pick("guidance", req.guidance.is_some(), false);
    if !(guidance.is_finite() && (0.0..=MAX_GUIDANCE).contains(&guidance)) {
        return Err(RequestError::new("guidance", format!("{guidance} is out of range"), format!("0 to {MAX_GUIDANCE} (1 or less: no classifier-free guidance)")));
    }
    let first_frame_steps = req.first_frame_steps.unwrap_or(spec.first_frame_steps);
    pick("first_frame_steps", req.first_frame_steps.is_some(), false);
    if first_frame_steps > MAX_STEPS {
        return Err(RequestError::new("first_frame_steps", format!("{first_frame_steps} steps is out of range"), format!("0 (the whole clip at once) to {MAX_STEPS}")));
    }
    let layout_strength = req.layout_strength.unwrap_or(spec.layout_strength);
    pick("layout_strength", req.layout_strength.is_some(), false);
    if !(layout_strength.is_finite() && (0.0..=1.0).contains(&layout_strength)) {
        return Err(RequestError::new("layout_strength", format!("{layout_strength} is out of range"), "0 (no layout, from noise) to 1"));
    }
    if layout_strength > 0.0 && !spec.planner {
        return Err(RequestError::new(
            "layout_strength",
            format!("{layout_strength}: this model has no layout planner"),
            "0 with this model, or a model with planner/ (`reel train planner MODEL` adds one)",
        ));
    }
    let layout_first_frame = req.layout_first_frame.unwrap_or(spec.layout_first_frame);
    pick("layout_first_frame", req.layout_first_frame.is_some(), false);
    let layout_guidance = req.layout_guidance.unwrap_or(spec.layout_guidance);
    pick("layout_guidance", req.layout_guidance.is_some(), false);
    if !(layout_guidance.is_finite() && (0.0..=1.0).contains(&layout_guidance)) {
        return Err(RequestError::new("layout_guidance", format!("{layout_guidance} is out of range"), "0 (no pull toward the layout) to 1"));
    }
    let layout_erosion = req.layout_erosion.unwrap_or(spec.layout_erosion);
    pick("layout_erosion", req.layout_erosion.is_some(), false);
    if !(layout_erosion.is_finite() && (0.0..=MAX_LAYOUT_EROSION).contains(&layout_erosion)) {
        return Err(RequestError::new("layout_erosion", format!("{layout_erosion} is out of range"), format!("0 (objects painted as planned) to {MAX_LAYOUT_EROSION} pixels")));
    }
    let layout_refine = req.layout_refine.unwrap_or(spec.layout_refine);
    pick("layout_refine", req.layout_refine.is_some(), false);
    if layout_refine > MAX_LAYOUT_REFINE {
        return Err(RequestError::new("layout_refine", format!("{layout_refine} round trips is out of range"), format!("0 (outlines painted as planned) to {MAX_LAYOUT_REFINE}")));
    }
    // Asked for by the request, they need a layout; a model's defaults just go unused without one.
    for (field, asked) in [
        ("layout_first_frame", req.layout_first_frame == Some(true)),
        ("layout_guidance", req.layout_guidance.is_some_and(|g| g > 0.0)),
        ("layout_erosion", req.layout_erosion.is_some_and(|f| f > 0.0)),
        ("layout_refine", req.layout_refine.is_some_and(|n| n > 0)),
    ] {
        if asked && layout_strength <= 0.0 {
            return Err(RequestError::new(field, "needs a layout, and layout_strength is 0", "layout_strength above 0 (with a model that has a planner), or leave this field out"));
        }
    }
    let scheduler = match &req.scheduler {
        Some(s) => SchedulerKind::parse(s).ok_or_else(|| RequestError::new("scheduler", format!("unknown scheduler '{s}'"), SchedulerKind::NAMES))?,
        None => spec.scheduler,
    };
    pick("scheduler", req.scheduler.is_some(), false);

    // Format: the JSON field, else the output path's extension, else MP4.
    let formats = "mp4, webm, avi, gif, png (a folder of frames)";
    let format = match &req.format {
        Some(f) => {
            let parsed: VideoFormat = f.parse().map_err(|_| RequestError::new("format", format!("unknown format '{f}'"), formats))?;
            if let Some(out) = output_format.filter(|&o| o != parsed) {
                return Err(RequestError::new("format", format!("'{f}' disagrees with the output file, which names {out}"), "a format matching the output's extension, or no format field"));
            }
            parsed
        }
        None => output_format.unwrap_or(VideoFormat::Mp4),
    };
    pick("format", req.format.is_some(), false);
    let seed = req.seed.unwrap_or(0);
    pick("seed", req.seed.is_some(), false);
    if req.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(RequestError::new("model", "is empty", "the bundled model's name (shapes-v1) or a model folder"));
    }

    let prompt = compose(&stated.content, style, camera, mood, theme);
    let negative_prompt = req.negative_prompt.clone().unwrap_or_else(|| spec.negative_prompt.clone());
    Ok(Resolved {
        prompt_given: req.prompt.clone(),
        prompt,
        content: stated.content,
        negative_prompt,
        style,
        camera,
        mood,
        theme,
        width,
        height,
        frames,
        fps,
        format,
        seed,
        steps,
        guidance,
        first_frame_steps,
        layout_strength,
        layout_first_frame,
        layout_guidance,
        layout_erosion,
        layout_refine,
        scheduler,
        sources,
        notes,
    })
}

fn size_from_text(size: Option<SizeStated>, spec: &ModelSpec) -> (u32, u32) {
    match size {
        Some(SizeStated::Exact(w, h)) => (w, h),
        Some(SizeStated::Aspect(aw, ah)) => {
            // Keep the default's shorter side; round the other to the model's multiple.
            let short = spec.width.min(spec.height);
            let m = spec.size_multiple;
            let long = |a: u32, b: u32| ((short as f64 * a as f64 / b as f64 / m as f64).round() as u32).max(1) * m;
            match aw.cmp(&ah) {
                std::cmp::Ordering::Equal => (short, short),
                std::cmp::Ordering::Greater => (long(aw, ah), short),
                std::cmp::Ordering::Less => (short, long(ah, aw)),
            }
        }
        None => (spec.width, spec.height),
    }
}

/// `[mood] [style] video of <content> [theme][, camera]`, in the caption vocabulary.
pub fn compose(content: &str, style: Option<Style>, camera: Option<Camera>, mood: Option<Mood>, theme: Option<Theme>) -> String {
    let mut words: Vec<&str> = Vec::new();
    if let Some(p) = mood.and_then(|m| phrase(mood_words(m))) {
        words.push(p);
    }
    if let Some(p) = style.and_then(|s| phrase(style_words(s))) {
        words.push(p);
    }
    words.push("video of");
    if !content.is_empty() {
        words.push(content);
    }
    if let Some(p) = theme.and_then(|t| phrase(theme_words(t))) {
        words.push(p);
    }
    let mut text = words.join(" ");
    if let Some(p) = camera.and_then(|c| phrase(camera_words(c))).filter(|_| camera != Some(Camera::Static)) {
        text.push_str(", ");
        text.push_str(p);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec { width: 64, height: 64, frames: 17, fps: 8.0, steps: 20, guidance: 4.0, first_frame_steps: 0, layout_strength: 0.0, layout_first_frame: false, layout_guidance: 0.0, layout_erosion: 0.0, layout_refine: 0, planner: false, negative_prompt: String::new(), scheduler: SchedulerKind::Euler, size_multiple: 16, frame_multiple: 4 }
    }

    #[test]
    fn text_states_duration_rate_size_and_labels() {
        let s = read_text("A red circle moving right, 3 seconds at 12 fps, 128x96, pixel-art style, the camera pans left, at night");
        assert_eq!((s.duration, s.fps, s.size), (Some(3.0), Some(12.0), Some(SizeStated::Exact(128, 96))));
        assert_eq!((s.style, s.camera, s.theme), (Some(Style::Pixel), Some(Camera::PanLeft), Some(Theme::Night)));
        assert_eq!(s.content, "a red circle moving right");
        let s = read_text("a 2.5-second square video of a gloomy blue square at 24fps");
        assert_eq!((s.duration, s.fps, s.size, s.mood), (Some(2.5), Some(24.0), Some(SizeStated::Aspect(1, 1)), Some(Mood::Gloomy)));
        assert_eq!(s.content, "a blue square");
        let s = read_text("three seconds of a green box, 9 frames, 64 x 128");
        assert_eq!((s.duration, s.frames, s.size), (Some(3.0), Some(9), Some(SizeStated::Exact(64, 128))));
        assert_eq!(s.content, "a green box");
        // "square" alone is the shape.
        let s = read_text("a yellow square growing");
        assert_eq!((s.size, s.content.as_str()), (None, "a yellow square growing"));
    }

    #[test]
    fn json_wins_over_text_and_the_prompt_is_composed() {
        let req = Request { prompt: "a red ball moving left, outlined, 2 seconds".into(), style: Some("pixel".into()), fps: Some(16.0), ..Default::default() };
        let r = resolve(&req, &spec(), None).unwrap();
        assert_eq!(r.style, Some(Style::Pixel));
        assert_eq!(r.prompt, "pixel-art video of a red ball moving left");
        // 2 s at 16 fps = 33 frames = 1 + 4·8.
        assert_eq!((r.frames, r.fps), (33, 16.0));
        assert_eq!(r.sources["style"], "request");
        assert_eq!(r.sources["frames"], "text");
        assert_eq!(r.sources["width"], "default");
        let r = resolve(&Request { prompt: "a blue circle".into(), camera: Some("zoom-in".into()), theme: Some("on sand".into()), mood: Some("cheerful".into()), ..Default::default() }, &spec(), None).unwrap();
        assert_eq!(r.prompt, "cheerful video of a blue circle on sand, the camera zooms in");
        // A duration is rounded to the nearest count the model makes, and said so.
        let r = resolve(&Request { prompt: "x".into(), duration: Some(1.3), ..Default::default() }, &spec(), None).unwrap();
        // 1.3 s at 8 fps: 11.4 frames → 1 + 4·round(2.6) = 13.
        assert_eq!(r.frames, 13);
        assert!(r.notes[0].contains("13 frames"), "{:?}", r.notes);
        // First-frame steps: the model's unless the request names them.
        let ff = ModelSpec { first_frame_steps: 12, ..spec() };
        let r = resolve(&Request::text("x"), &ff, None).unwrap();
        assert_eq!((r.first_frame_steps, r.sources["first_frame_steps"].as_str()), (12, "default"));
        let r = resolve(&Request { prompt: "x".into(), first_frame_steps: Some(0), ..Default::default() }, &ff, None).unwrap();
        assert_eq!((r.first_frame_steps, r.sources["first_frame_steps"].as_str()), (0, "request"));
        // Aspect words keep the default's short side.
        let r = resolve(&Request::text("a landscape video of a red circle"), &spec(), None).unwrap();
        assert_eq!((r.width, r.height), (112, 64));
    }

    #[test]
    fn bad_requests_name_the_field_and_what_is_accepted() {
        let err = |req: Request| resolve(&req, &spec(), None).unwrap_err();
        let e = err(Request { prompt: "x".into(), frames: Some(18), ..Default::default() });
        assert_eq!(e.field, "frames");
        assert!(e.message.contains("nearest: 17 or 21"), "{e}");
        // Past the limit, the nearest is the largest count allowed; below one, one.
        let e = err(Request { prompt: "x".into(), frames: Some(2000), ..Default::default() });
        assert!(e.message.ends_with("nearest: 1025"), "{e}");
        let e = err(Request { prompt: "x".into(), frames: Some(0), ..Default::default() });
        assert!(e.message.ends_with("nearest: 1"), "{e}");
        let e = err(Request { prompt: "x".into(), width: Some(100), ..Default::default() });
        assert!(e.to_string().contains("nearest: 96 or 112") && e.accepted.contains("multiples of 16"), "{e}");
        let e = err(Request { prompt: "x".into(), style: Some("watercolour".into()), ..Default::default() });
        assert_eq!(e.accepted, "flat, outline, pixel");
        let e = err(Request { prompt: "x".into(), format: Some("mkv".into()), ..Default::default() });
        assert!(e.accepted.contains("webm"), "{e}");
        let e = resolve(&Request { prompt: "x".into(), format: Some("gif".into()), ..Default::default() }, &spec(), Some(VideoFormat::Mp4)).unwrap_err();
        assert!(e.message.contains("disagrees"), "{e}");
        assert_eq!(err(Request { prompt: "x".into(), fps: Some(0.0), ..Default::default() }).field, "fps");
        assert_eq!(err(Request { prompt: "x".into(), steps: Some(0), ..Default::default() }).field, "steps");
        assert_eq!(err(Request { prompt: "x".into(), guidance: Some(f64::NAN), ..Default::default() }).field, "guidance");
        let e = err(Request { prompt: "x".into(), first_frame_steps: Some(501), ..Default::default() });
        assert!(e.field == "first_frame_steps" && e.accepted.starts_with("0 (the whole clip at once)"), "{e}");
        assert_eq!(err(Request { prompt: "x".into(), scheduler: Some("ddim".into()), ..Default::default() }).field, "scheduler");
        let e = err(Request { prompt: "x".into(), layout_guidance: Some(1.5), ..Default::default() });
        assert!(e.field == "layout_guidance" && e.accepted.contains("0 (no pull"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_erosion: Some(8.5), ..Default::default() });
        assert!(e.field == "layout_erosion" && e.accepted.contains("0 (objects painted as planned) to 8 pixels"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_erosion: Some(0.2), ..Default::default() });
        assert!(e.field == "layout_erosion" && e.message.contains("needs a layout"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_refine: Some(5), ..Default::default() });
        assert!(e.field == "layout_refine" && e.message.contains("5 round trips") && e.accepted.contains("0 (outlines painted as planned) to 4"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_refine: Some(1), ..Default::default() });
        assert!(e.field == "layout_refine" && e.message.contains("needs a layout"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_first_frame: Some(true), ..Default::default() });
        assert!(e.field == "layout_first_frame" && e.message.contains("needs a layout"), "{e}");
        let guided = ModelSpec { planner: true, layout_strength: 0.5, layout_first_frame: true, layout_guidance: 0.3, layout_erosion: 1.5, layout_refine: 1, ..spec() };
        let r = resolve(&Request::text("x"), &guided, None).unwrap();
        assert_eq!((r.layout_first_frame, r.layout_guidance, r.sources["layout_guidance"].as_str()), (true, 0.3, "default"));
        assert_eq!((r.layout_erosion, r.sources["layout_erosion"].as_str()), (1.5, "default"));
        let r = resolve(&Request { prompt: "x".into(), layout_erosion: Some(0.0), ..Default::default() }, &guided, None).unwrap();
        assert_eq!((r.layout_erosion, r.sources["layout_erosion"].as_str()), (0.0, "request"));
        assert_eq!((r.layout_refine, r.sources["layout_refine"].as_str()), (1, "default"));
        let r = resolve(&Request { prompt: "x".into(), layout_refine: Some(0), ..Default::default() }, &guided, None).unwrap();
        assert_eq!((r.layout_refine, r.sources["layout_refine"].as_str()), (0, "request"));
        // Turning the layout off leaves the model's defaults unused rather than refused.
        let r = resolve(&Request { prompt: "x".into(), layout_strength: Some(0.0), ..Default::default() }, &guided, None).unwrap();
        assert_eq!(r.layout_strength, 0.0);
        let e = resolve(&Request { prompt: "x".into(), layout_strength: Some(0.0), layout_guidance: Some(0.2), ..Default::default() }, &guided, None).unwrap_err();
        assert_eq!(e.field, "layout_guidance", "{e}");
        let e = err(Request { prompt: "x".into(), layout_strength: Some(1.5), ..Default::default() });
        assert!(e.field == "layout_strength" && e.accepted.contains("0 (no layout"), "{e}");
        let e = err(Request { prompt: "x".into(), layout_strength: Some(0.5), ..Default::default() });
        assert!(e.message.contains("no layout planner") && e.accepted.contains("reel train planner"), "{e}");
        let planned = ModelSpec { planner: true, layout_strength: 0.8, ..spec() };
        let r = resolve(&Request::text("x"), &planned, None).unwrap();
        assert_eq!((r.layout_strength, r.sources["layout_strength"].as_str()), (0.8, "default"));
        let r = resolve(&Request { prompt: "x".into(), layout_strength: Some(0.0), ..Default::default() }, &planned, None).unwrap();
        assert_eq!((r.layout_strength, r.sources["layout_strength"].as_str()), (0.0, "request"));
        assert_eq!(err(Request { prompt: " ".into(), ..Default::default() }).field, "prompt");
        assert_eq!(err(Request { prompt: "x".into(), frames: Some(17), duration: Some(2.0), ..Default::default() }).field, "frames");
        assert_eq!(err(Request::text("a red circle, 9999 seconds")).field, "duration");
        let e = Request::from_json(r#"{"prompt": "x", "colour": "red"}"#).unwrap_err();
        assert!(e.message.contains("unknown field `colour`") && e.message.contains("negative_prompt"), "{e}");
    }
}
