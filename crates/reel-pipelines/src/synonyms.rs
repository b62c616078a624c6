//! Words outside a small model's vocabulary mapped to ones inside it ("a crimson ball drifting
//! to the right" → "a red ball moving to the right"), so that Reel's word-level models follow
//! paraphrases of their captions. Only unknown words are replaced, and only by known ones:
//! a model with a sub-word tokenizer (T5, umT5) knows every word and sees the prompt as given.

/// (word, replacements in order of preference).
const TABLE: &[(&str, &[&str])] = &[
    // Colours.
    ("crimson", &["red"]), ("scarlet", &["red"]), ("ruby", &["red"]), ("cherry", &["red"]),
    ("emerald", &["green"]), ("lime", &["green"]), ("olive", &["green"]),
    ("azure", &["blue"]), ("navy", &["blue"]), ("cobalt", &["blue"]), ("sapphire", &["blue"]),
    ("gold", &["yellow"]), ("golden", &["yellow"]), ("lemon", &["yellow"]),
    ("violet", &["purple"]), ("lilac", &["purple"]), ("lavender", &["purple"]), ("magenta", &["purple"]), ("indigo", &["purple"]),
    ("amber", &["orange"]), ("tangerine", &["orange"]),
    ("teal", &["cyan"]), ("turquoise", &["cyan"]), ("aqua", &["cyan"]),
    ("ivory", &["white"]), ("snowy", &["white"]),
    // Shapes.
    ("sphere", &["ball", "circle"]), ("orb", &["ball", "circle"]), ("dot", &["circle"]), ("round", &["circle"]),
    ("cube", &["box", "square"]), ("rectangle", &["square"]), ("tile", &["square"]),
    ("pyramid", &["triangle"]), ("wedge", &["triangle"]),
    // Motion.
    ("drifting", &["moving"]), ("gliding", &["moving"]), ("travelling", &["moving"]), ("traveling", &["moving"]),
    ("heading", &["moving"]), ("going", &["moving"]), ("rolling", &["moving"]), ("flying", &["moving"]), ("shifting", &["moving"]),
    ("ascending", &["rising"]), ("climbing", &["rising"]), ("descending", &["falling"]), ("dropping", &["falling"]),
    ("enlarging", &["growing"]), ("swelling", &["growing"]), ("inflating", &["growing"]),
    ("contracting", &["shrinking"]), ("deflating", &["shrinking"]), ("dwindling", &["shrinking"]),
    ("towards", &["to"]), ("toward", &["to"]),
    // Size and speed.
    ("huge", &["large", "big"]), ("giant", &["large", "big"]), ("little", &["small", "tiny"]), ("mini", &["small", "tiny"]),
    ("rapidly", &["quickly", "fast"]), ("swiftly", &["quickly", "fast"]), ("gently", &["slowly"]), ("leisurely", &["slowly"]),
];

/// Replaces the words of `prompt` that `known` rejects by a known synonym, when the table has
/// one; returns the new prompt and the replacements made.
pub fn normalize(prompt: &str, known: impl Fn(&str) -> bool) -> (String, Vec<(String, String)>) {
    let mut replaced = Vec::new();
    let words: Vec<String> = prompt
        .split(' ')
        .map(|token| {
            // Keep punctuation around the word ("crimson," → "red,").
            let start = token.find(|c: char| c.is_alphanumeric()).unwrap_or(token.len());
            let end = token.rfind(|c: char| c.is_alphanumeric()).map_or(start, |i| i + 1);
            let word = token[start..end].to_lowercase();
            if word.is_empty() || known(&word) {
                return token.to_string();
            }
            match TABLE.iter().find(|(w, _)| *w == word).and_then(|(_, to)| to.iter().find(|t| known(t))) {
                Some(to) => {
                    replaced.push((word, to.to_string()));
                    format!("{}{to}{}", &token[..start], &token[end..])
                }
                None => token.to_string(),
            }
        })
        .collect();
    (words.join(" "), replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_become_known_synonyms() {
        let vocab = ["a", "red", "ball", "moving", "to", "the", "right", "circle", "quickly", "video", "of"];
        let known = |w: &str| vocab.contains(&w);
        let (text, replaced) = normalize("video of a crimson sphere drifting towards the right, swiftly", known);
        assert_eq!(text, "video of a red ball moving to the right, quickly");
        assert_eq!(replaced.len(), 5);
        // Words without a known synonym stay (and a known word is never touched).
        assert_eq!(normalize("a teal ball", known).0, "a teal ball");
        // A vocabulary that knows everything (sub-word tokenizers) sees the prompt as given.
        assert_eq!(normalize("a crimson orb", |_| true), ("a crimson orb".to_string(), vec![]));
    }
}
