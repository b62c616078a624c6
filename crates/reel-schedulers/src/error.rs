//! The one error type of `reel-schedulers`.

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),

    #[error("scheduler config: {0}")]
    Config(String),

    #[error("scheduler option '{option}' = {value} is not supported ({supported})")]
    Unsupported { option: &'static str, value: String, supported: &'static str },

    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
