//! The shim's error: one variant per ttrpc code containerd reacts to.

use std::fmt;

use containerd_shim_protos::ttrpc::{self, Code};
use rvisor_api::ErrorKind;

/// A failed task request, as containerd will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such container or process, or the process already finished
    /// (containerd's `ErrNotFound`, which it treats as "already exited").
    NotFound(String),
    /// The container or exec id is taken.
    AlreadyExists(String),
    /// The request does not fit the task's state (start twice, delete a running task).
    FailedPrecondition(String),
    /// The request itself is malformed.
    InvalidArgument(String),
    /// rvisor does not do what was asked.
    Unimplemented(String),
    /// The shim itself failed (spawning, files, locks).
    Internal(String),
    /// rvisor failed for a reason it did not classify.
    Unknown(String),
}

/// The result of a task request.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The ttrpc code containerd receives.
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Internal(_) => Code::INTERNAL,
            Error::Unknown(_) => Code::UNKNOWN,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::InvalidArgument(m)
            | Error::Unimplemented(m)
            | Error::Internal(m)
            | Error::Unknown(m) => m,
        }
    }

    /// The error for an rvisor command that failed with `kind`.
    pub fn from_rvisor(kind: ErrorKind, msg: String) -> Error {
        match kind {
            ErrorKind::NotFound => Error::NotFound(msg),
            ErrorKind::AlreadyExists => Error::AlreadyExists(msg),
            // containerd's convention: signalling or querying a finished process is
            // "not found" (CRI's StopContainer, for one, then treats it as stopped).
            ErrorKind::NotRunning => Error::NotFound(msg),
            ErrorKind::FailedPrecondition => Error::FailedPrecondition(msg),
            ErrorKind::InvalidArgument => Error::InvalidArgument(msg),
            ErrorKind::Unimplemented => Error::Unimplemented(msg),
            ErrorKind::Other => Error::Unknown(msg),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> ttrpc::Error {
        ttrpc::Error::RpcStatus(ttrpc::Status {
            code: e.code().into(),
            message: e.message().to_string(),
            ..Default::default()
        })
    }
}

/// Shorthand for the shim's own failures.
pub fn internal(msg: impl Into<String>) -> Error {
    Error::Internal(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rvisor_kinds_map_to_codes() {
        for (kind, code) in [
            (ErrorKind::NotFound, Code::NOT_FOUND),
            (ErrorKind::AlreadyExists, Code::ALREADY_EXISTS),
            (ErrorKind::NotRunning, Code::NOT_FOUND),
            (ErrorKind::FailedPrecondition, Code::FAILED_PRECONDITION),
            (ErrorKind::InvalidArgument, Code::INVALID_ARGUMENT),
            (ErrorKind::Unimplemented, Code::UNIMPLEMENTED),
            (ErrorKind::Other, Code::UNKNOWN),
        ] {
            let e = Error::from_rvisor(kind, format!("{kind}"));
            assert_eq!(e.code(), code, "{kind}");
            assert_eq!(e.message(), kind.as_str());
        }
    }

    #[test]
    fn errors_become_ttrpc_statuses() {
        for e in [
            Error::NotFound("a".into()),
            Error::AlreadyExists("b".into()),
            Error::FailedPrecondition("c".into()),
            Error::InvalidArgument("d".into()),
            Error::Unimplemented("e".into()),
            Error::Internal("f".into()),
            Error::Unknown("g".into()),
        ] {
            let code = e.code();
            let msg = e.message().to_string();
            match ttrpc::Error::from(e) {
                ttrpc::Error::RpcStatus(s) => {
                    assert_eq!(s.code(), code);
                    assert_eq!(s.message, msg);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
