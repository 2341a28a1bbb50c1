//! Errors as the protocol sees them: a Plan 9 string and a Linux errno.
//!
//! Every handler error becomes a reply in one place ([`Error::to_reply`]):
//! Rerror with the string in 9P2000, Rerror with string and errno in
//! 9P2000.u, Rlerror with the errno in 9P2000.L. Errors never close the
//! connection.

use std::borrow::Cow;
use std::fmt;

use ninep::{Dialect, Fcall, Rerror, Rlerror};

/// A 9P error: the text a 9P2000 client sees and the errno a .u/.L client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Linux errno.
    pub errno: i32,
    /// Plan 9-style text, lowercase, with a subsystem prefix where useful
    /// (`ctl: unknown verb 'exce'`).
    pub msg: Cow<'static, str>,
}

/// Result of a handler.
pub type Result<T> = std::result::Result<T, Error>;

macro_rules! canonical {
    ($($(#[doc = $doc:literal])* $fn:ident => $errno:ident, $msg:literal;)*) => {
        impl Error {
            $(
                $(#[doc = $doc])*
                pub fn $fn() -> Self { Error { errno: libc::$errno, msg: Cow::Borrowed($msg) } }
            )*
        }
    };
}

canonical! {
    /// The name does not exist.
    not_found => ENOENT, "file not found";
    /// The caller may not do this.
    perm => EACCES, "permission denied";
    /// Writes are refused (lib9p's default for a file without a write handler).
    no_write => EACCES, "write prohibited";
    /// Reads are refused.
    no_read => EACCES, "read prohibited";
    /// Creation is refused.
    no_create => EACCES, "create prohibited";
    /// Removal is refused.
    no_remove => EACCES, "remove prohibited";
    /// Attribute changes are refused.
    no_wstat => EACCES, "wstat prohibited";
    /// Walk or directory operation on a file.
    not_dir => ENOTDIR, "not a directory";
    /// File operation on a directory.
    is_dir => EISDIR, "is a directory";
    /// Create of a name that exists.
    exists => EEXIST, "file already exists";
    /// Remove of a directory with entries.
    not_empty => ENOTEMPTY, "directory not empty";
    /// The fid is not in the table.
    unknown_fid => EBADF, "unknown fid";
    /// Attach or walk to a fid already in the table.
    dup_fid => EBADF, "fid already in use";
    /// Open or walk of an open fid.
    fid_open => EBADF, "fid already open";
    /// Read or write of a fid not open for it.
    not_open => EBADF, "fid not open for that mode";
    /// A request the session cannot make sense of.
    botch => EPROTO, "9P protocol botch";
    /// An operation this file or tree does not support.
    not_supported => EOPNOTSUPP, "operation not supported";
    /// A bad argument.
    invalid => EINVAL, "invalid argument";
    /// A directory read at an offset that is not where the last one ended.
    bad_dir_offset => EINVAL, "bad offset in directory read";
    /// The request was interrupted by Tflush or shutdown.
    interrupted => EINTR, "interrupted";
    /// No authentication is required; attach with afid NOFID. ENOENT is
    /// what diod and its client library use to mean exactly this.
    no_auth => ENOENT, "authentication not required";
    /// The operation is not in the dialect the session negotiated.
    wrong_dialect => EOPNOTSUPP, "message not supported in this protocol version";
}

impl Error {
    /// An error with a specific errno and text.
    pub fn new(errno: i32, msg: impl Into<Cow<'static, str>>) -> Self {
        Error {
            errno,
            msg: msg.into(),
        }
    }

    /// `EINVAL` with a message, for bad ctl lines and bad arguments.
    pub fn invalid_arg(msg: impl Into<Cow<'static, str>>) -> Self {
        Error::new(libc::EINVAL, msg)
    }

    /// `EIO` with a message, for failures of the thing behind a file.
    pub fn io(msg: impl Into<Cow<'static, str>>) -> Self {
        Error::new(libc::EIO, msg)
    }

    /// The reply for this error in `dialect`.
    pub fn to_reply(&self, dialect: Dialect) -> Fcall {
        match dialect {
            Dialect::L => Fcall::Rlerror(Rlerror {
                ecode: self.errno as u32,
            }),
            Dialect::U | Dialect::P2000 => Fcall::Rerror(Rerror {
                ename: self.msg.to_string(),
                errno: self.errno as u32,
            }),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    /// Host errors keep their errno; the text follows Plan 9's wording for
    /// the common cases and the host's otherwise.
    fn from(e: std::io::Error) -> Self {
        let Some(errno) = e.raw_os_error() else {
            return Error::io(e.to_string());
        };
        let msg: Cow<'static, str> = match errno {
            libc::ENOENT => "file not found".into(),
            libc::EACCES | libc::EPERM => "permission denied".into(),
            libc::EEXIST => "file already exists".into(),
            libc::ENOTDIR => "not a directory".into(),
            libc::EISDIR => "is a directory".into(),
            libc::ENOTEMPTY => "directory not empty".into(),
            libc::EXDEV => "path escapes the exported tree".into(),
            libc::ELOOP => "too many levels of symbolic links".into(),
            libc::ENOSPC => "no space left on device".into(),
            libc::EROFS => "read-only file system".into(),
            _ => {
                let text = e.to_string();
                // "Permission denied (os error 13)" -> "permission denied"
                let text = text.split(" (os error").next().unwrap_or(&text);
                text.to_lowercase().into()
            }
        };
        Error { errno, msg }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_errno_and_get_plan9_text() {
        let e: Error = std::io::Error::from_raw_os_error(libc::ENOENT).into();
        assert_eq!(e, Error::not_found());
        let e: Error = std::io::Error::from_raw_os_error(libc::EBUSY).into();
        assert_eq!(e.errno, libc::EBUSY);
        assert_eq!(e.msg, "device or resource busy");
    }

    #[test]
    fn replies_follow_the_dialect() {
        let e = Error::not_found();
        assert_eq!(
            e.to_reply(Dialect::L),
            Fcall::Rlerror(Rlerror {
                ecode: libc::ENOENT as u32
            })
        );
        match e.to_reply(Dialect::P2000) {
            Fcall::Rerror(r) => assert_eq!(r.ename, "file not found"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
