//! Pieces shared by more than one model.

pub mod attention;
pub mod channel;
pub mod conv;
pub mod embeddings;
pub mod fast_math;
pub mod norm;
pub mod rope;
pub mod rows;
