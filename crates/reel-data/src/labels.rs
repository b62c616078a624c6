//! Shapes World's scene labels, exactly as `shared/specs/shapes-world.md` lists them.

use serde::{Deserialize, Serialize};

macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the spec's order (which is also its index).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Position in the spec's table.
            pub fn index(self) -> usize {
                Self::ALL.iter().position(|&v| v == self).expect("listed")
            }

            /// The label as the spec and the manifest write it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let names: Vec<_> = Self::ALL.iter().map(|v| v.name()).collect();
                    format!("unknown {} '{s}' (accepted: {})", stringify!($name).to_lowercase(), names.join(", "))
                })
            }
        }
    };
}

label_enum!(
    /// Object fill colour.
    Color { Red = "red", Green = "green", Blue = "blue", Yellow = "yellow", Purple = "purple", Orange = "orange", Cyan = "cyan", White = "white" }
);
label_enum!(
    /// Object shape; triangles point up.
    Shape { Circle = "circle", Square = "square", Triangle = "triangle" }
);
label_enum!(
    /// Object size: radius 0.08 / 0.12 / 0.17 of the canvas width.
    Size { Small = "small", Medium = "medium", Large = "large" }
);
label_enum!(
    /// Object motion in world coordinates.
    Motion { Left = "left", Right = "right", Up = "up", Down = "down", Still = "still", Grow = "grow", Shrink = "shrink" }
);
label_enum!(
    /// How far an object moves or scales over the clip.
    Speed { Slow = "slow", Normal = "normal", Fast = "fast" }
);
label_enum!(
    /// Background.
    Theme { Black = "black", Gray = "gray", Night = "night", Sand = "sand" }
);
label_enum!(
    /// Camera motion.
    Camera { Static = "static", PanLeft = "pan-left", PanRight = "pan-right", ZoomIn = "zoom-in", ZoomOut = "zoom-out" }
);
label_enum!(
    /// Drawing style.
    Style { Flat = "flat", Outline = "outline", Pixel = "pixel" }
);
label_enum!(
    /// Mood: changes the background only.
    Mood { Neutral = "neutral", Cheerful = "cheerful", Gloomy = "gloomy" }
);

impl Color {
    /// Exact sRGB fill colour.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Self::Red => [0xE6, 0x28, 0x28],
            Self::Green => [0x28, 0xC8, 0x3C],
            Self::Blue => [0x28, 0x50, 0xE6],
            Self::Yellow => [0xF0, 0xDC, 0x28],
            Self::Purple => [0x96, 0x32, 0xC8],
            Self::Orange => [0xF5, 0x8C, 0x1E],
            Self::Cyan => [0x28, 0xD2, 0xDC],
            Self::White => [0xF5, 0xF5, 0xF5],
        }
    }
}

impl Size {
    /// Circle radius, square half-side, triangle circumradius, as a fraction of the canvas width.
    pub fn radius(self) -> f64 {
        match self {
            Self::Small => 0.08,
            Self::Medium => 0.12,
            Self::Large => 0.17,
        }
    }
}

impl Speed {
    /// Translation over the whole clip, in canvas widths.
    pub fn distance(self) -> f64 {
        match self {
            Self::Slow => 0.2,
            Self::Normal => 0.35,
            Self::Fast => 0.5,
        }
    }

    /// Final radius over start radius when growing (its inverse when shrinking).
    pub fn scale(self) -> f64 {
        match self {
            Self::Slow => 1.3,
            Self::Normal => 1.6,
            Self::Fast => 2.0,
        }
    }
}

impl Theme {
    /// Background colour before the mood.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Self::Black => [0x14, 0x14, 0x14],
            Self::Gray => [0x6E, 0x6E, 0x6E],
            Self::Night => [0x0F, 0x14, 0x3C],
            Self::Sand => [0xC8, 0xB4, 0x8C],
        }
    }
}

impl Mood {
    /// The background colour after the mood (without the gloomy vignette, which varies over the frame).
    pub fn apply(self, rgb: [f64; 3]) -> [f64; 3] {
        match self {
            Self::Neutral => rgb,
            Self::Cheerful => {
                const TINT: [f64; 3] = [255.0, 242.0, 204.0];
                [0, 1, 2].map(|i| rgb[i] + 0.35 * (TINT[i] - rgb[i]))
            }
            Self::Gloomy => rgb.map(|c| c * 0.5),
        }
    }
}

/// One object's labels. `speed` is `None` exactly when `motion` is `still`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectLabels {
    pub color: Color,
    pub shape: Shape,
    pub size: Size,
    pub motion: Motion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
}

impl ObjectLabels {
    /// Whether this object's (colour, shape, motion) triple is held out of training.
    pub fn is_held_out(&self) -> bool {
        is_held_out(self.color, self.shape, self.motion)
    }
}

/// A whole clip's labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SceneLabels {
    pub objects: Vec<ObjectLabels>,
    pub theme: Theme,
    pub camera: Camera,
    pub style: Style,
    pub mood: Mood,
}

/// The held-out rule: `(colour + 2·shape + 3·motion) mod 7 == 0`.
pub fn is_held_out(color: Color, shape: Shape, motion: Motion) -> bool {
    (color.index() + 2 * shape.index() + 3 * motion.index()) % 7 == 0
}

/// Every (colour, shape, motion) triple on one side of the rule.
pub fn triples(held_out: bool) -> Vec<(Color, Shape, Motion)> {
    let mut out = Vec::new();
    for &c in Color::ALL {
        for &s in Shape::ALL {
            for &m in Motion::ALL {
                if is_held_out(c, s, m) == held_out {
                    out.push((c, s, m));
                }
            }
        }
    }
    out
}

/// Which triples a generator call may draw objects from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// No object has a held-out triple.
    Train,
    /// Every object has a held-out triple.
    Holdout,
    /// Any triple.
    All,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Holdout => "holdout",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "holdout" | "held-out" | "test" => Ok(Self::Holdout),
            "all" => Ok(Self::All),
            _ => Err(format!("unknown split '{s}' (accepted: train, holdout, all)")),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which scenes a generator call draws, besides the split's triples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenes {
    /// Anything the world makes: one or two objects, every theme, camera, style and mood.
    #[default]
    All,
    /// The spec's "Scoring a generated clip" case: one object, static camera, flat style,
    /// neutral mood (any theme, size and speed). The prompts quality targets are measured on.
    Scoring,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_rule_counts_match_the_spec() {
        let held = triples(true);
        assert_eq!(held.len(), 24);
        assert_eq!(triples(false).len(), 144);
        for &c in Color::ALL {
            assert_eq!(held.iter().filter(|t| t.0 == c).count(), 3, "{c}");
        }
        for &s in Shape::ALL {
            assert_eq!(held.iter().filter(|t| t.1 == s).count(), 8, "{s}");
        }
    }

    #[test]
    fn labels_round_trip_through_their_names() {
        assert_eq!("pan-left".parse::<Camera>().unwrap(), Camera::PanLeft);
        assert_eq!(serde_json::to_string(&Camera::ZoomOut).unwrap(), "\"zoom-out\"");
        assert!("magenta".parse::<Color>().unwrap_err().contains("accepted: red"));
    }
}
