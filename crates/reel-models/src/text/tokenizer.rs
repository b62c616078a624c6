//! Tokenization through Hugging Face `tokenizers` (`tokenizer.json`: T5's
//! unigram, BERT's word pieces, and Reel's own word-level vocabulary).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;

use crate::error::{ModelError, Result};

/// Padding and unknown-word tokens of Reel's word-level vocabularies.
pub const PAD: &str = "[PAD]";
pub const UNK: &str = "[UNK]";

/// A loaded `tokenizer.json`.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTokenizer(vocab {})", self.inner.get_vocab_size(true))
    }
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::InvalidFile { what: "tokenizer", path: path.to_path_buf(), reason: e.to_string() })?;
        // T5 pads with <pad> (0), BERT with [PAD] (0), Reel with [PAD].
        let pad_id = ["<pad>", PAD].iter().find_map(|t| inner.token_to_id(t)).unwrap_or(0);
        Ok(Self { inner, pad_id })
    }

    /// A lower-casing word-level tokenizer over `words` (plus `[PAD]` = 0 and `[UNK]` = 1).
    pub fn word_level<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        vocab.insert(PAD.into(), 0);
        vocab.insert(UNK.into(), 1);
        for w in words {
            let w = w.to_lowercase();
            let next = vocab.len() as u32;
            vocab.entry(w).or_insert(next);
        }
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token(UNK.into())
            .build()
            .map_err(|e| ModelError::Config(format!("word-level tokenizer: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_normalizer(Some(Lowercase)).map_err(|e| ModelError::Config(format!("tokenizer normalizer: {e}")))?;
        inner.with_pre_tokenizer(Some(Whitespace {}));
        Ok(Self { inner, pad_id: 0 })
    }

    /// A word-level tokenizer whose vocabulary is every word of `texts`, split exactly as
    /// the tokenizer itself splits (lower-cased; runs of word characters, runs of other
    /// non-space characters), sorted.
    pub fn word_level_from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let mut words = Vec::new();
        for text in texts {
            let mut pre = PreTokenizedString::from(text.to_lowercase());
            Whitespace {}.pre_tokenize(&mut pre).map_err(|e| ModelError::Config(format!("splitting '{text}': {e}")))?;
            words.extend(pre.get_splits(OffsetReferential::Original, OffsetType::Byte).into_iter().map(|(w, _, _)| w.to_string()));
        }
        words.sort();
        words.dedup();
        Self::word_level(words.iter().map(String::as_str))
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, true)
            .map_err(|e| ModelError::InvalidFile { what: "tokenizer", path: path.to_path_buf(), reason: e.to_string() })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of one token of the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The ids of one text, with the tokenizer's own special tokens (T5's `</s>`, BERT's `[CLS]`…`[SEP]`).
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, true).map_err(|e| ModelError::Config(format!("tokenizing '{text}': {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Words of `text` that map to the unknown token (an empty list for sub-word tokenizers).
    pub fn unknown_words(&self, text: &str) -> Result<Vec<String>> {
        let Some(unk) = self.inner.token_to_id(UNK) else { return Ok(Vec::new()) };
        let enc = self.inner.encode(text, false).map_err(|e| ModelError::Config(e.to_string()))?;
        Ok(enc.get_ids().iter().zip(enc.get_offsets()).filter(|(&id, _)| id == unk).map(|(_, &(a, b))| text[a..b].to_string()).collect())
    }

    /// `[B, max_len]` ids and mask (1 = token), truncated to `max_len` and padded with the pad id.
    pub fn batch(&self, texts: &[&str], max_len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let mut ids = Vec::with_capacity(texts.len() * max_len);
        let mut mask = Vec::with_capacity(texts.len() * max_len);
        for text in texts {
            let mut t = self.ids(text)?;
            t.truncate(max_len);
            mask.extend(std::iter::repeat_n(1u32, t.len()).chain(std::iter::repeat_n(0, max_len - t.len())));
            t.resize(max_len, self.pad_id);
            ids.extend(t);
        }
        let shape = (texts.len(), max_len);
        Ok((Tensor::from_vec(ids, shape, device)?, Tensor::from_vec(mask, shape, device)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_level_round_trips_through_tokenizer_json() {
        let tok = TextTokenizer::word_level("a red circle moving right , on sand".split(' ')).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tok.save(&path).unwrap();
        let loaded = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(loaded.ids("A red circle, moving RIGHT").unwrap(), tok.ids("a red circle , moving right").unwrap());
        assert_eq!(loaded.unknown_words("a crimson circle").unwrap(), vec!["crimson".to_string()]);
        let (ids, mask) = loaded.batch(&["red circle", "a red circle moving right on sand"], 4, &Device::Cpu).unwrap();
        assert_eq!(mask.to_vec2::<u32>().unwrap(), vec![vec![1, 1, 0, 0], vec![1, 1, 1, 1]]);
        assert_eq!(ids.to_vec2::<u32>().unwrap()[0][2..], [0, 0]);
    }

    #[test]
    fn a_vocabulary_from_texts_knows_every_word_they_contain() {
        let tok = TextTokenizer::word_level_from_texts(["Pixel-art video of a ball, the camera pans left", "a ball"]).unwrap();
        // [PAD], [UNK], then: "-", ",", a, art, ball, camera, left, of, pans, pixel, the, video.
        assert_eq!(tok.vocab_size(), 14);
        let text = "pixel-art video of a ball, the camera pans left";
        assert!(tok.unknown_words(text).unwrap().is_empty());
        assert_eq!(tok.ids(text).unwrap().len(), 12);
    }

    #[test]
    fn a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = TextTokenizer::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
