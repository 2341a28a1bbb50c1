//! Namespace operations as text: one line of a namespace(6) file or of a
//! control message, `verb [-abc] args...`.
//!
//! The verbs are `bind [-abc] NEW OLD`, `mount [-abc] PEER OLD [SPEC]`
//! and `unmount [NEW] OLD`. Fields are quoted as [`cmdbuf::parse`] reads
//! them. Flags may be combined (`-bc`) or given apart (`-b -c`); `-a` and
//! `-b` exclude each other. namespace(6)'s `cd`, `clear`, `.` and `$name`
//! expansion are not supported: a namespace here has no current directory
//! or environment.

use std::fmt;

use cmdbuf::Cmd;

use crate::ctl::{BIND, MOUNT, UNMOUNT};

/// Where a bind or mount puts the new directory in the union at `old`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pos {
    /// Replace whatever is at `old` (Plan 9's MREPL): the default.
    #[default]
    Replace,
    /// `-b`: first in the union (MBEFORE).
    Before,
    /// `-a`: last in the union (MAFTER).
    After,
}

/// The flags of a bind or mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Where in the union.
    pub pos: Pos,
    /// `-c`: files may be created in this member (MCREATE).
    pub create: bool,
}

impl Flags {
    /// Replace, no create: no flags.
    pub const REPLACE: Flags = Flags {
        pos: Pos::Replace,
        create: false,
    };
    /// `-b`.
    pub const BEFORE: Flags = Flags {
        pos: Pos::Before,
        create: false,
    };
    /// `-a`.
    pub const AFTER: Flags = Flags {
        pos: Pos::After,
        create: false,
    };

    /// These flags with `-c` added.
    pub fn create(self) -> Flags {
        Flags {
            create: true,
            ..self
        }
    }

    /// Parses one flag field such as `-bc`, adding to `self`.
    pub fn add(&mut self, field: &str) -> Result<(), String> {
        let letters = field
            .strip_prefix('-')
            .filter(|l| !l.is_empty())
            .ok_or_else(|| format!("bad flag '{field}'"))?;
        for c in letters.chars() {
            let pos = match c {
                'a' => Pos::After,
                'b' => Pos::Before,
                'c' => {
                    self.create = true;
                    continue;
                }
                _ => return Err(format!("unknown flag -{c}")),
            };
            if self.pos != Pos::Replace && self.pos != pos {
                return Err("-a and -b together".into());
            }
            self.pos = pos;
        }
        Ok(())
    }
}

/// Flags as written: `` (none), `-a`, `-bc`, `-c`.
impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pos = match self.pos {
            Pos::Replace => "",
            Pos::Before => "b",
            Pos::After => "a",
        };
        let create = if self.create { "c" } else { "" };
        if pos.is_empty() && create.is_empty() {
            Ok(())
        } else {
            write!(f, "-{pos}{create}")
        }
    }
}

/// One namespace operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsOp {
    /// `bind [-abc] NEW OLD`.
    Bind {
        /// Flags.
        flags: Flags,
        /// The file bound: a path in the namespace, evaluated now.
        new: String,
        /// Where it goes.
        old: String,
    },
    /// `mount [-abc] PEER OLD [SPEC]`.
    Mount {
        /// Flags.
        flags: Flags,
        /// The source: a peer's name, turned into a tree by a [`crate::Resolver`].
        peer: String,
        /// Where it goes.
        old: String,
        /// The attach name: which of the peer's trees ("" for the default).
        spec: String,
    },
    /// `unmount [NEW] OLD`.
    Unmount {
        /// The bound path or peer to remove; `None` removes everything at `old`.
        new: Option<String>,
        /// The mount point.
        old: String,
    },
}

impl NsOp {
    /// The operation on one line of text; `None` for a blank line or a
    /// comment (`#` as the first non-blank character).
    pub fn parse_line(line: &str) -> Result<Option<NsOp>, String> {
        if line.trim_start().starts_with('#') {
            return Ok(None);
        }
        let fields = cmdbuf::parse(line).map_err(|e| e.to_string())?;
        if fields.is_empty() {
            return Ok(None);
        }
        let table = [BIND, MOUNT, UNMOUNT];
        cmdbuf::lookup(&table, &fields).map_err(|e| e.to_string())?;
        NsOp::from_fields(&fields).map(Some)
    }

    /// The operation from fields already split (`fields[0]` is the verb).
    /// Errors are plain messages: `usage: bind [-abc] NEW OLD`.
    pub fn from_fields(fields: &[String]) -> Result<NsOp, String> {
        let Some((verb, rest)) = fields.split_first() else {
            return Err("empty control message".into());
        };
        let (cmd, positional) = match verb.as_str() {
            "bind" => (BIND, 2..=2),
            "mount" => (MOUNT, 2..=3),
            "unmount" => (UNMOUNT, 1..=2),
            other => return Err(format!("unknown verb '{other}'")),
        };
        let usage = |cmd: Cmd| format!("usage: {}", cmd.usage_line());
        let mut flags = Flags::default();
        let mut args = rest;
        // unmount takes no flags, and its NEW may be a peer's name.
        if cmd.verb != "unmount" {
            while let Some((first, tail)) = args.split_first() {
                if !first.starts_with('-') {
                    break;
                }
                flags.add(first).map_err(|e| format!("{}: {e}", cmd.verb))?;
                args = tail;
            }
        }
        if !positional.contains(&args.len()) {
            return Err(usage(cmd));
        }
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        Ok(match cmd.verb {
            "bind" => NsOp::Bind {
                flags,
                new: arg(0),
                old: arg(1),
            },
            "mount" => NsOp::Mount {
                flags,
                peer: arg(0),
                old: arg(1),
                spec: arg(2),
            },
            _ if args.len() == 2 => NsOp::Unmount {
                new: Some(arg(0)),
                old: arg(1),
            },
            _ => NsOp::Unmount {
                new: None,
                old: arg(0),
            },
        })
    }
}

/// The operation as one line (no newline), fields quoted so that
/// [`NsOp::parse_line`] reads back the same operation.
impl fmt::Display for NsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = |s: &str| cmdbuf::quote(s).into_owned();
        let with_flags = |verb: &str, flags: &Flags| {
            let flags = flags.to_string();
            if flags.is_empty() {
                verb.to_owned()
            } else {
                format!("{verb} {flags}")
            }
        };
        match self {
            NsOp::Bind { flags, new, old } => {
                write!(f, "{} {} {}", with_flags("bind", flags), q(new), q(old))
            }
            NsOp::Mount {
                flags,
                peer,
                old,
                spec,
            } => {
                write!(f, "{} {} {}", with_flags("mount", flags), q(peer), q(old))?;
                if !spec.is_empty() {
                    write!(f, " {}", q(spec))?;
                }
                Ok(())
            }
            NsOp::Unmount {
                new: Some(new),
                old,
            } => write!(f, "unmount {} {}", q(new), q(old)),
            NsOp::Unmount { new: None, old } => write!(f, "unmount {}", q(old)),
        }
    }
}

/// A line of a namespace file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ns: line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// Parses a namespace(6) file: one operation per line; blank lines and
/// lines starting with `#` are skipped. The first bad line is an error
/// naming it, and nothing is returned: a half-read namespace is worse
/// than a refused one.
pub fn parse_ns_file(text: &str) -> Result<Vec<NsOp>, ParseError> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match NsOp::parse_line(line) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(msg) => return Err(ParseError { line: i + 1, msg }),
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn op(line: &str) -> NsOp {
        NsOp::parse_line(line).unwrap().unwrap()
    }

    #[test]
    fn flags_combine_and_print() {
        let bind = |flags| NsOp::Bind {
            flags,
            new: "/x y".into(),
            old: "/z".into(),
        };
        assert_eq!(op("bind -bc /x /y"), op("bind -b -c /x /y"));
        assert_eq!(op("bind -cb '/x y' /z"), bind(Flags::BEFORE.create()));
        assert_eq!(bind(Flags::AFTER).to_string(), "bind -a '/x y' /z");
        assert_eq!(
            bind(Flags::REPLACE.create()).to_string(),
            "bind -c '/x y' /z"
        );
        assert_eq!(bind(Flags::REPLACE).to_string(), "bind '/x y' /z");
        let m = op("mount -b alice /n/alice /files");
        assert_eq!(m.to_string(), "mount -b alice /n/alice /files");
        assert_eq!(
            m,
            NsOp::Mount {
                flags: Flags::BEFORE,
                peer: "alice".into(),
                old: "/n/alice".into(),
                spec: "/files".into()
            }
        );
        assert_eq!(op("unmount /n/alice").to_string(), "unmount /n/alice");
        assert_eq!(op("unmount alice /n/a").to_string(), "unmount alice /n/a");
    }

    #[test]
    fn bad_lines_say_why() {
        let err = |l: &str| NsOp::parse_line(l).unwrap_err();
        assert_eq!(err("bind -ab /x /y"), "bind: -a and -b together");
        assert_eq!(err("bind -q /x /y"), "bind: unknown flag -q");
        assert_eq!(err("bind /x"), "usage: bind [-abc] NEW OLD");
        assert_eq!(err("bind -a /x /y /z"), "usage: bind [-abc] NEW OLD");
        assert_eq!(err("mount -c alice"), "usage: mount [-abc] PEER OLD [SPEC]");
        assert_eq!(err("unmount a b c"), "usage: unmount [NEW] OLD");
        assert_eq!(
            err("bnid /x /y"),
            "unknown verb 'bnid' (did you mean 'bind'?)"
        );
        assert_eq!(err("bind '/x /y"), "unterminated ' quote at byte 5");
    }

    #[test]
    fn files_skip_comments_and_name_bad_lines() {
        let text = "# my namespace\n\n  # indented comment\nbind -a /x /y\nmount alice /n/alice\n";
        let ops = parse_ns_file(text).unwrap();
        assert_eq!(ops.len(), 2);
        let e = parse_ns_file("bind /a /b\n\nbind -x /a /b\n").unwrap_err();
        assert_eq!(e.to_string(), "ns: line 3: bind: unknown flag -x");
        let e = parse_ns_file("cd /tmp\n").unwrap_err();
        assert_eq!(e.to_string(), "ns: line 1: unknown verb 'cd'");
    }
}
