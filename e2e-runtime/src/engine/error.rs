//! The engine's errors, by kind, so that callers decide on what happened rather than on the
//! wording of a message.

use std::fmt;

/// What kind of failure an engine call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// The engine cannot be reached, or the connection broke.
    Unavailable,
    /// The resource does not exist.
    NotFound,
    /// The image a container needs is not on the engine.
    NoSuchImage,
    /// A resource of that name exists already, or the operation is in progress.
    Conflict,
    /// A network still has endpoints (containers attached, or the engine believes so).
    InUse,
    /// The engine refused the request as invalid.
    BadRequest,
    /// The call did not finish in time.
    Timeout,
    /// Anything else the engine answered.
    Other,
}

impl fmt::Display for EngineErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineErrorKind::Unavailable => "engine unavailable",
            EngineErrorKind::NotFound => "not found",
            EngineErrorKind::NoSuchImage => "no such image",
            EngineErrorKind::Conflict => "conflict",
            EngineErrorKind::InUse => "in use",
            EngineErrorKind::BadRequest => "bad request",
            EngineErrorKind::Timeout => "timed out",
            EngineErrorKind::Other => "engine error",
        })
    }
}

/// An engine call's failure: its kind, the HTTP status when the engine answered one, and the
/// engine's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    kind: EngineErrorKind,
    status: Option<u16>,
    message: String,
}

impl EngineError {
    #[doc(hidden)]
    pub fn new(kind: EngineErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        EngineError { kind, status, message: message.into() }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> EngineErrorKind {
        self.kind
    }

    /// The engine's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The engine's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (status {status})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for EngineError {}

/// An error with the whole chain of its causes: an HTTP client's message alone ("client error
/// (Connect)") hides the reason.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
