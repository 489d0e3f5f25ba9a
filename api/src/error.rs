use std::fmt;

use serde::{Deserialize, Serialize};

/// The field of rvisor's JSON log line that carries the [`ErrorKind`] of a failure.
pub const KIND_FIELD: &str = "kind";

/// The kind of a failed rvisor command, for callers that must react to it (the
/// shim turns it into a ttrpc code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The container does not exist.
    NotFound,
    /// A container with that id exists already.
    AlreadyExists,
    /// The container is not running (stopped, or not started for an exec).
    NotRunning,
    /// The container is in a state the command cannot act on (paused, say).
    FailedPrecondition,
    /// A flag, id or bundle field is malformed or refused.
    InvalidArgument,
    /// The request asks for something rvisor does not implement.
    Unimplemented,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The name written in the log (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotRunning => "not_running",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Other => "other",
        }
    }

    /// The kind named `s` in a log; unknown names (a newer rvisor) are `Other`.
    pub fn parse(s: &str) -> ErrorKind {
        [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotRunning,
            ErrorKind::FailedPrecondition,
            ErrorKind::InvalidArgument,
            ErrorKind::Unimplemented,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(ErrorKind::Other)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error message tagged with its kind; rvisor finds it in an error's chain to
/// log the kind, whatever context was added on the way up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The message shown to people.
    pub msg: String,
}

impl KindError {
    /// A `kind` failure saying `msg`.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> KindError {
        KindError {
            kind,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for KindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for KindError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotRunning,
            ErrorKind::FailedPrecondition,
            ErrorKind::InvalidArgument,
            ErrorKind::Unimplemented,
            ErrorKind::Other,
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(ErrorKind::parse(k.as_str()), k);
        }
        assert_eq!(ErrorKind::parse("something_new"), ErrorKind::Other);
    }
}
