/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event {aggregate_type}/{aggregate_id}#{sequence} cannot be decoded: {source}")]
    Decode {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        source: serde_json::Error,
    },
    #[error("event cannot be encoded: {0}")]
    Encode(serde_json::Error),
    #[error("unknown position {0}")]
    UnknownPosition(i64),
}

/// Why a command was not executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// `If-Match` named another version than the current one.
    #[error("expected version {expected}, the aggregate is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    /// Other writers kept winning the race for the aggregate's next version.
    #[error("the aggregate kept changing concurrently; try again")]
    Conflict,
    /// The idempotency key was used before with a different request.
    #[error("idempotency key already used for a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: std::error::Error> From<sqlx::Error> for ExecuteError<E> {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}
