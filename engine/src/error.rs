use model::FieldError;

/// The engine's one error type. Each variant maps to one HTTP status at the API edge; the
/// messages are safe to show to the user (internal causes are only in `Internal`, which the
/// edge logs and replaces with a generic message).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: every problem, each naming its module and field (400).
    #[error("{}", .0.first().map(|e| e.to_string()).unwrap_or_default())]
    Invalid(Vec<FieldError>),
    /// Not signed in, or bad credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Conflicts, and every parameter call of an aborted run (409).
    #[error("{0}")]
    Conflict(String),
    /// A value over the size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The run would take the user over a connector quota (429).
    #[error("{0}")]
    QuotaExceeded(String),
    /// Too many attempts (sign-in, sign-up) from one address or at one account (429 with
    /// `Retry-After`).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A blocking read reached its deadline (408).
    #[error("{0}")]
    Timeout(String),
    /// A connector or another service the engine needs cannot be reached right now (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status this error calls for: the API and the pages' server functions answer it.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Timeout(_) => 408,
            Self::Conflict(_) => 409,
            Self::TooLarge(_) => 413,
            Self::QuotaExceeded(_) | Self::RateLimited { .. } => 429,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    pub fn invalid(module: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(module, field, reason)])
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // A unique-key violation is a conflict the caller caused (two saves racing for the
        // same version number, a name taken between check and insert), not a server fault.
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Self::Conflict("that was changed by someone else at the same time; try again".into());
            }
        }
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("database migration failed: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("stored document unreadable: {e}"))
    }
}
