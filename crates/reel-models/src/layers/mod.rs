//! Pieces shared by more than one model.

pub mod attention;
pub mod embeddings;
pub mod norm;
pub mod rope;
