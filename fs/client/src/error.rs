//! The client's error type and its mapping to `std::io::Error`.

use std::io;

use ninep::Dialect;

/// A result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with Rerror or Rlerror.
    ///
    /// For Rlerror (9P2000.L) `msg` is the errno's text (`no such file or
    /// directory`); for Rerror it is the server's string, and `errno` is set
    /// only in 9P2000.u.
    #[error("{msg}")]
    Remote {
        /// The Unix errno, when the dialect carries one.
        errno: Option<u32>,
        /// The error text.
        msg: String,
    },
    /// A walk stopped before its last name without an error reply, which is
    /// how 9P says that name does not exist (walk(5)).
    #[error("'{name}' not found (walked {walked} of {total} names)")]
    WalkIncomplete {
        /// The first name that could not be walked.
        name: String,
        /// How many names were walked.
        walked: usize,
        /// How many names were asked for.
        total: usize,
    },
    /// The connection failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The server broke the protocol: a reply of the wrong type, a reply for
    /// a tag not in flight, an undecodable or oversized frame, or a refused
    /// version. The connection is closed.
    #[error("9P protocol botch: {0}")]
    Protocol(String),
    /// The request is not valid: a name longer than 65535 bytes, a message
    /// larger than the negotiated msize, a malformed dial string, or a
    /// message that [`crate::Client::rpc`] cannot send on the caller's behalf.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The operation does not exist in the negotiated dialect.
    #[error("{op} is not supported in {}", .dialect.version_string())]
    Unsupported {
        /// The operation, named after its message (`Tlopen`).
        op: &'static str,
        /// The dialect in force.
        dialect: Dialect,
    },
    /// The connection is closed: the server hung up, or an earlier error
    /// closed it.
    #[error("connection closed")]
    Closed,
}

impl Error {
    /// An error for a Linux errno, with its text from the C library:
    /// `no such file or directory`.
    pub fn from_errno(errno: u32) -> Error {
        Error::Remote {
            errno: Some(errno),
            msg: errno_text(errno),
        }
    }

    /// The errno this error stands for, if it has one.
    pub fn errno(&self) -> Option<u32> {
        match self {
            Error::Remote { errno, .. } => *errno,
            _ => None,
        }
    }

    /// A copy for delivering one connection failure to every waiter.
    /// `io::Error` is not `Clone`, so it is rebuilt from its kind, errno and text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Remote { errno, msg } => Error::Remote {
                errno: *errno,
                msg: msg.clone(),
            },
            Error::WalkIncomplete {
                name,
                walked,
                total,
            } => Error::WalkIncomplete {
                name: name.clone(),
                walked: *walked,
                total: *total,
            },
            Error::Io(e) => Error::Io(match e.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::Invalid(m) => Error::Invalid(m.clone()),
            Error::Unsupported { op, dialect } => Error::Unsupported {
                op,
                dialect: *dialect,
            },
            Error::Closed => Error::Closed,
        }
    }
}

/// Maps errnos to `raw_os_error`s (so `kind()` follows), and the rest to
/// the nearest [`io::ErrorKind`]; 9P2000 error strings are matched against
/// the Plan 9 and Unix wordings of the common cases.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        if let Error::Io(io) = e {
            return io;
        }
        if let Some(n) = e.errno().and_then(|n| i32::try_from(n).ok()) {
            return io::Error::from_raw_os_error(n);
        }
        let kind = match &e {
            Error::Io(_) => io::ErrorKind::Other,
            Error::Remote { msg, .. } => kind_of_message(msg),
            Error::WalkIncomplete { .. } => io::ErrorKind::NotFound,
            Error::Protocol(_) => io::ErrorKind::InvalidData,
            Error::Invalid(_) => io::ErrorKind::InvalidInput,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::Closed => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// The C library's text for `errno`, lowercased and without Rust's
/// `(os error N)` suffix.
pub(crate) fn errno_text(errno: u32) -> String {
    let text = match i32::try_from(errno) {
        Ok(n) => io::Error::from_raw_os_error(n).to_string(),
        Err(_) => return format!("errno {errno}"),
    };
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_lowercase()
}

fn kind_of_message(msg: &str) -> io::ErrorKind {
    let m = msg.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&["does not exist", "not found", "no such file"]) {
        io::ErrorKind::NotFound
    } else if has(&["permission denied", "prohibited", "not permitted"]) {
        io::ErrorKind::PermissionDenied
    } else if has(&["exists"]) {
        io::ErrorKind::AlreadyExists
    } else if has(&["interrupted", "flushed"]) {
        io::ErrorKind::Interrupted
    } else {
        io::ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use super::*;

    #[test]
    fn errno_text_is_lowercase_without_suffix() {
        assert_eq!(errno_text(2), "no such file or directory");
        assert_eq!(errno_text(13), "permission denied");
        assert_eq!(Error::from_errno(17).to_string(), "file exists");
    }

    #[test]
    fn io_error_keeps_errno() {
        let io: io::Error = Error::from_errno(2).into();
        assert_eq!(io.raw_os_error(), Some(2));
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn io_error_kind_from_plan9_strings() {
        let remote = |msg: &str| Error::Remote {
            errno: None,
            msg: msg.into(),
        };
        let kind = |e: Error| io::Error::from(e).kind();
        assert_eq!(kind(remote("file does not exist")), io::ErrorKind::NotFound);
        assert_eq!(
            kind(remote("permission denied")),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(remote("file already exists")),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(kind(remote("botch")), io::ErrorKind::Other);
        assert_eq!(kind(Error::Closed), io::ErrorKind::NotConnected);
        let io = io::Error::from(remote("ctl: unknown verb 'x'"));
        assert_eq!(io.to_string(), "ctl: unknown verb 'x'");
    }

    #[test]
    fn duplicate_keeps_errno_of_io_errors() {
        let e = Error::Io(io::Error::from_raw_os_error(104));
        match e.duplicate() {
            Error::Io(io) => assert_eq!(io.raw_os_error(), Some(104)),
            other => panic!("{other:?}"),
        }
    }
}
