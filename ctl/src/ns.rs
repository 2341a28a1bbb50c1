//! The session with gridd: dial, attach, namespace paths, and the error
//! line every command prints.

use std::fmt;
use std::io;
use std::time::Duration;

use ninep::Dialect;
use ninep_client::{Client, ClientConfig, Error, Fid, DEFAULT_MSIZE};

/// How long dialing and attaching may take before the command gives up.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a command, or one of its paths, failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An operation on `subject` (a namespace path, an address, a mount
    /// point) failed; printed as `grid: SUBJECT: MESSAGE`.
    At {
        /// What the error is about.
        subject: String,
        /// The error text: the server's for remote errors.
        msg: String,
    },
    /// Standard output's reader went away. Not an error: the command stops
    /// and exits 0, as `cat | head` expects (ripgrep does the same).
    PipeClosed,
}

impl Failure {
    /// A failure of `subject` with text `msg`.
    pub fn at(subject: impl fmt::Display, msg: impl Into<String>) -> Failure {
        Failure::At {
            subject: subject.to_string(),
            msg: msg.into(),
        }
    }

    /// A failure of `subject` from a 9P client error.
    pub fn remote(subject: impl fmt::Display, e: &Error) -> Failure {
        Failure::at(subject, message(e))
    }

    /// A failure of `subject` from a local I/O error. A broken pipe is
    /// [`Failure::PipeClosed`].
    pub fn io(subject: impl fmt::Display, e: &io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Failure::PipeClosed;
        }
        Failure::at(subject, io_message(e))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::At { subject, msg } => write!(f, "{subject}: {msg}"),
            Failure::PipeClosed => f.write_str("standard output: broken pipe"),
        }
    }
}

/// The text of a 9P client error, in the server's words where there are
/// any. A walk that stopped short is `file not found`, as Plan 9 says.
pub fn message(e: &Error) -> String {
    match e {
        Error::WalkIncomplete { .. } => "file not found".into(),
        Error::Remote { msg, .. } => msg.clone(),
        Error::Io(io) => io_message(io),
        other => other.to_string(),
    }
}

/// An I/O error's text without Rust's `(os error N)` suffix, lowercase:
/// `connection refused`.
pub fn io_message(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The names to walk for a namespace path: empty elements and `.` are
/// dropped and `..` removes the name before it, never going above the
/// root. `/files/t/../t/x` and `files/t/x` are both `files`, `t`, `x`.
pub fn elements(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => out.push(name.to_owned()),
        }
    }
    out
}

/// A connection to gridd, attached to the root of its namespace.
#[derive(Debug)]
pub struct Ns {
    /// The dial string, for errors that are not about a path.
    pub addr: String,
    root: Fid,
}

impl Ns {
    /// Dials `addr` speaking `dialect` and attaches to the namespace root
    /// (aname ""), as the invoking user; fails after [`DIAL_TIMEOUT`].
    pub async fn connect(addr: &str, dialect: Dialect) -> Result<Ns, Failure> {
        let config = ClientConfig {
            msize: DEFAULT_MSIZE,
            dialect,
        };
        let attach = async {
            let client = Client::dial_with(addr, config).await?;
            client.attach_as(&user_name(), euid(), "").await
        };
        match tokio::time::timeout(DIAL_TIMEOUT, attach).await {
            Ok(Ok(root)) => Ok(Ns {
                addr: addr.to_owned(),
                root,
            }),
            Ok(Err(e)) => Err(Failure::remote(addr, &e)),
            Err(_) => Err(Failure::at(addr, "timed out")),
        }
    }

    /// The root of the namespace.
    pub fn root(&self) -> &Fid {
        &self.root
    }

    /// The session.
    pub fn client(&self) -> &Client {
        self.root.client()
    }

    /// Takes the root fid (for the mount, which keeps it).
    pub fn into_root(self) -> Fid {
        self.root
    }

    /// A new fid for `path` (see [`elements`]); errors name `path` as
    /// given.
    pub async fn walk(&self, path: &str) -> Result<Fid, Failure> {
        self.root
            .walk(&elements(path))
            .await
            .map_err(|e| Failure::remote(path, &e))
    }

    /// The whole of the file at `path`, as text (invalid UTF-8 replaced).
    pub async fn read_text(&self, path: &str) -> Result<String, Failure> {
        let mut fid = self.walk(path).await?;
        fid.open(ninep_client::OpenFlags::READ)
            .await
            .map_err(|e| Failure::remote(path, &e))?;
        let data = fid
            .read_all()
            .await
            .map_err(|e| Failure::remote(path, &e))?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// A fid for the directory that holds `path`, and the last name of
    /// `path`; `None` for the root itself, which has no parent.
    pub async fn walk_parent(&self, path: &str) -> Result<Option<(Fid, String)>, Failure> {
        let mut names = elements(path);
        let Some(last) = names.pop() else {
            return Ok(None);
        };
        let dir = self
            .root
            .walk(&names)
            .await
            .map_err(|e| Failure::remote(path, &e))?;
        Ok(Some((dir, last)))
    }
}

/// The user name sent in Tattach: `$USER`, or the password file's name for
/// the effective uid, or `none`.
fn user_name() -> String {
    if let Some(u) = std::env::var_os("USER").and_then(|u| u.into_string().ok()) {
        if !u.is_empty() {
            return u;
        }
    }
    ninep_server::ids::user_name(euid()).unwrap_or_else(|| "none".into())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_normalise_and_stay_below_the_root() {
        assert_eq!(elements("/files/t/x"), ["files", "t", "x"]);
        assert_eq!(elements("files//t/./x/"), ["files", "t", "x"]);
        assert_eq!(elements("/files/t/../u"), ["files", "u"]);
        assert_eq!(elements("/../../status"), ["status"]);
        assert!(elements("/").is_empty());
        assert!(elements("").is_empty());
    }

    #[test]
    fn messages_use_plan9_words() {
        let walk = Error::WalkIncomplete {
            name: "nope".into(),
            walked: 2,
            total: 3,
        };
        assert_eq!(message(&walk), "file not found");
        let remote = Error::Remote {
            errno: Some(22),
            msg: "ctl: unknown verb 'exce'".into(),
        };
        assert_eq!(message(&remote), "ctl: unknown verb 'exce'");
        let io = Error::Io(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(message(&io), "connection refused");
    }

    #[test]
    fn failures_print_subject_then_message() {
        let f = Failure::at("/files/x", "file not found");
        assert_eq!(f.to_string(), "/files/x: file not found");
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(Failure::io("stdout", &pipe), Failure::PipeClosed);
    }
}
