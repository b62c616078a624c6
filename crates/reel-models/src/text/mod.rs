//! Text encoders: T5/umT5 (Wan's conditioning), BERT/MiniLM (sentence-transformers
//! layout), and Reel's own small encoder (`reel-text`), behind one [`TextEncoder`]
//! interface; tokenisation through `tokenizer.json` ([`tokenizer::TextTokenizer`]).

pub mod bert;
pub mod reel_text;
pub mod t5;
pub mod tokenizer;

use candle_core::{Result, Tensor};

/// Token ids in, hidden states out.
pub trait TextEncoder {
    /// `input_ids` `[B, L]`, `attention_mask` `[B, L]` (1 = token, 0 = padding) → `[B, L, hidden_size]`.
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;
    /// Width of the hidden states.
    fn hidden_size(&self) -> usize;
}

impl TextEncoder for t5::T5Encoder {
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward(input_ids, attention_mask)
    }

    fn hidden_size(&self) -> usize {
        self.config().d_model
    }
}

impl TextEncoder for bert::BertEncoder {
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward(input_ids, attention_mask)
    }

    fn hidden_size(&self) -> usize {
        self.config().hidden_size
    }
}

impl TextEncoder for reel_text::ReelTextEncoder {
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.forward(input_ids, attention_mask)
    }

    fn hidden_size(&self) -> usize {
        self.config().hidden_size
    }
}
