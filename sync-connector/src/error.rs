use once_client::ClientError;

/// Why a piece of sync work did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("1NCE API: {0}")]
    Provider(#[from] ClientError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] eventstore::StoreError),
    /// The aggregate refused what the provider reported (e.g. an invalid IMSI).
    #[error("{aggregate} refused the command: {code}: {message}")]
    Refused {
        aggregate: String,
        code: &'static str,
        message: String,
    },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
}

impl SyncError {
    pub fn decode(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Decode {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
