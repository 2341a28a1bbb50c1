//! Control-message parsing in the shape of Plan 9's `parsecmd` and
//! `lookupcmd` (9pcmdbuf(2)).
//!
//! A control file (`ctl`) takes text commands such as `exec sh -c 'x y'`.
//! This crate owns the text side of that: it splits a write into lines,
//! a line into fields (with quoting), and finds the field's verb in a table
//! of [`Cmd`]s that also knows each verb's argument count and usage. The
//! same table yields the help text ([`usage_text`]), so `grid help`, the
//! man pages and the error messages cannot drift apart.
//!
//! It does not own what a verb *does*: callers match on [`Cmd::verb`] (or
//! on an index they keep beside the table) after [`lookup`] succeeds. Nor
//! does it know about files, 9P or errors on the wire; its errors are plain
//! lowercase messages to which callers add a prefix (`ctl: `).
//!
//! # Layout
//!
//! - [`lines`]: one write into lines; invalid UTF-8 is an error.
//! - [`parse`]: one line into fields, with rc-style `'single'` quotes and
//!   shell-style `"double"` quotes; [`quote`] is its inverse.
//! - [`Cmd`], [`lookup`]: the verb table and the check of a parsed line
//!   against it; [`usage_text`] renders the table.
//!
//! # Example
//!
//! ```
//! use cmdbuf::{lookup, parse, Cmd};
//!
//! static TABLE: &[Cmd] = &[
//!     Cmd { verb: "exec", min_args: 1, max_args: None, usage: "CMD [ARG...]" },
//!     Cmd { verb: "kill", min_args: 0, max_args: Some(0), usage: "" },
//! ];
//!
//! let fields = parse("exec sh -c 'echo it''s'\n").unwrap();
//! assert_eq!(fields, ["exec", "sh", "-c", "echo it's"]);
//! assert_eq!(lookup(TABLE, &fields).unwrap().verb, "exec");
//!
//! let err = lookup(TABLE, &parse("exce ls").unwrap()).unwrap_err();
//! assert_eq!(err.to_string(), "unknown verb 'exce' (did you mean 'exec'?)");
//! ```

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::fmt;

/// A line that could not be split into fields, or a write that is not text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A quote was opened and never closed.
    #[error("unterminated {quote} quote at byte {at}")]
    Unterminated {
        /// Which quote: `'` or `"`.
        quote: QuoteKind,
        /// Byte offset of the opening quote in the line.
        at: usize,
    },
    /// The bytes of a write are not UTF-8.
    #[error("control message is not valid UTF-8 (at byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
}

/// The two kinds of quote [`parse`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteKind {
    /// rc-style `'...'`: no escapes, `''` inside is one `'`.
    Single,
    /// Shell-style `"..."`: `\"` and `\\` are escapes.
    Double,
}

impl fmt::Display for QuoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuoteKind::Single => "'",
            QuoteKind::Double => "\"",
        })
    }
}

/// A parsed line that does not match the verb table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmdError {
    /// The line has no fields at all.
    #[error("empty control message")]
    Empty,
    /// The first field is not a verb of the table.
    #[error("unknown verb '{verb}'{}", did_you_mean(.suggestion))]
    UnknownVerb {
        /// The verb as written (shortened if it is very long).
        verb: String,
        /// A verb of the table that is close to it, if there is one.
        suggestion: Option<&'static str>,
    },
    /// The verb is known but has too few or too many arguments.
    #[error("usage: {}", usage_line(.verb, .usage))]
    Usage {
        /// The verb.
        verb: &'static str,
        /// Its argument synopsis from the table.
        usage: &'static str,
    },
}

/// One verb of a control file: Plan 9's `Cmdtab`.
///
/// Argument counts exclude the verb itself (unlike `Cmdtab.narg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmd {
    /// The verb, matched exactly (case-sensitive).
    pub verb: &'static str,
    /// The fewest arguments after the verb.
    pub min_args: usize,
    /// The most arguments after the verb, or `None` for no limit.
    pub max_args: Option<usize>,
    /// The argument synopsis, e.g. `CMD [ARG...]`; empty for none.
    pub usage: &'static str,
}

impl Cmd {
    /// The verb and its synopsis: `exec CMD [ARG...]`.
    pub fn usage_line(&self) -> String {
        usage_line(self.verb, self.usage)
    }

    fn accepts(&self, nargs: usize) -> bool {
        nargs >= self.min_args && self.max_args.is_none_or(|max| nargs <= max)
    }
}

/// Splits one control line into fields.
///
/// Fields are separated by runs of blanks (space, tab, CR, LF). A trailing
/// newline is removed first. Quoting follows rc(1) and, for users who type
/// through a Unix shell, sh(1):
///
/// - `'it''s'` is one field `it's`: inside single quotes nothing is special
///   except `''`, which stands for one quote.
/// - `"a \"b\" \\c"` is one field `a "b" \c`: inside double quotes `\"` and
///   `\\` are escapes and any other backslash is kept.
/// - Quoted and unquoted text next to each other join into one field
///   (`a'b c'd` is `ab cd`), and `''` alone is an empty field.
/// - Outside quotes a backslash is an ordinary character.
///
/// An unterminated quote is an error; so nothing half-parsed is ever acted on.
pub fn parse(line: &str) -> Result<Vec<String>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
        if chars.peek().is_none() {
            return Ok(fields);
        }
        let mut field = String::new();
        while let Some((at, c)) = chars.next_if(|&(_, c)| !is_blank(c)) {
            match c {
                '\'' => loop {
                    match chars.next() {
                        None => return Err(unterminated(QuoteKind::Single, at)),
                        Some((_, '\'')) if chars.next_if(|&(_, c)| c == '\'').is_some() => {
                            field.push('\'')
                        }
                        Some((_, '\'')) => break,
                        Some((_, c)) => field.push(c),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        None => return Err(unterminated(QuoteKind::Double, at)),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next_if(|&(_, c)| c == '"' || c == '\\') {
                            Some((_, c)) => field.push(c),
                            None => field.push('\\'),
                        },
                        Some((_, c)) => field.push(c),
                    }
                },
                c => field.push(c),
            }
        }
        fields.push(field);
    }
}

/// Quotes `field` so that [`parse`] reads it back as one field, rc-style.
///
/// Fields that need no quotes are returned as they are.
pub fn quote(field: &str) -> Cow<'_, str> {
    let plain = !field.is_empty() && !field.chars().any(|c| is_blank(c) || c == '\'' || c == '"');
    if plain {
        return Cow::Borrowed(field);
    }
    let mut out = String::with_capacity(field.len() + 2);
    out.push('\'');
    for c in field.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Finds the entry of `table` for the verb in `fields[0]` and checks the
/// number of arguments against it.
///
/// Errors quote the input: `unknown verb 'exce' (did you mean 'exec'?)`,
/// `usage: exec CMD [ARG...]`, `empty control message`.
pub fn lookup<'a>(table: &'a [Cmd], fields: &[String]) -> Result<&'a Cmd, CmdError> {
    let Some((verb, args)) = fields.split_first() else {
        return Err(CmdError::Empty);
    };
    let Some(cmd) = table.iter().find(|c| c.verb == verb) else {
        return Err(CmdError::UnknownVerb {
            verb: shorten(verb),
            suggestion: suggest(table, verb),
        });
    };
    if !cmd.accepts(args.len()) {
        return Err(CmdError::Usage {
            verb: cmd.verb,
            usage: cmd.usage,
        });
    }
    Ok(cmd)
}

/// One `verb usage` line per entry of `table`, in table order, each ending
/// in a newline: the text a ctl file returns when read, `grid help` prints,
/// and the man pages list.
pub fn usage_text(table: &[Cmd]) -> String {
    table.iter().fold(String::new(), |mut out, cmd| {
        out.push_str(&cmd.usage_line());
        out.push('\n');
        out
    })
}

/// Splits one write to a control file into its lines, in order.
///
/// Lines end at `\n` (a `\r` before it is dropped too); lines that are
/// empty or only blanks are skipped, so `echo > ctl` yields no lines.
/// A quoted field cannot span lines.
pub fn lines(data: &[u8]) -> Result<Vec<String>, ParseError> {
    let text = std::str::from_utf8(data).map_err(|e| ParseError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    Ok(text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.chars().all(is_blank))
        .map(str::to_owned)
        .collect())
}

/// Verbs longer than this are cut in error messages, so a hostile write
/// cannot make an error as large as itself.
const MAX_QUOTED: usize = 64;

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn unterminated(quote: QuoteKind, at: usize) -> ParseError {
    ParseError::Unterminated { quote, at }
}

fn usage_line(verb: &str, usage: &str) -> String {
    if usage.is_empty() {
        verb.to_owned()
    } else {
        format!("{verb} {usage}")
    }
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default()
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The verb of `table` closest to `verb`, if it is close enough to be a
/// typo: at most one edit for short verbs, two for longer ones, where
/// swapping two neighbouring letters counts as one edit.
fn suggest(table: &[Cmd], verb: &str) -> Option<&'static str> {
    if verb.chars().count() > MAX_QUOTED {
        return None;
    }
    let limit = if verb.chars().count() <= 3 { 1 } else { 2 };
    table
        .iter()
        .map(|c| (edit_distance(verb, c.verb), c.verb))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, v)| v)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] is the distance between a[..i] and b[..j]; three rows suffice.
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    static TABLE: &[Cmd] = &[
        Cmd {
            verb: "exec",
            min_args: 1,
            max_args: None,
            usage: "CMD [ARG...]",
        },
        Cmd {
            verb: "kill",
            min_args: 0,
            max_args: Some(1),
            usage: "[SIGNAL]",
        },
        Cmd {
            verb: "halt",
            min_args: 0,
            max_args: Some(0),
            usage: "",
        },
    ];

    fn fields(line: &str) -> Vec<String> {
        parse(line).unwrap()
    }

    #[test]
    fn splits_on_blanks_and_strips_newline() {
        assert_eq!(fields("  exec\tls  -l \n"), ["exec", "ls", "-l"]);
        assert_eq!(fields("exec ls\r\n"), ["exec", "ls"]);
        assert!(fields("").is_empty());
        assert!(fields(" \t\n").is_empty());
    }

    #[test]
    fn single_quotes_are_rc_style() {
        assert_eq!(fields("echo 'it''s'"), ["echo", "it's"]);
        assert_eq!(fields("echo 'a b' c"), ["echo", "a b", "c"]);
        assert_eq!(fields("echo '' x"), ["echo", "", "x"]);
        assert_eq!(fields("a'b c'd"), ["ab cd"]);
        assert_eq!(fields(r"'a\b'"), [r"a\b"]);
        assert_eq!(fields(r#"'say "hi"'"#), [r#"say "hi""#]);
        assert_eq!(fields("''''"), ["'"]);
    }

    #[test]
    fn double_quotes_are_shell_style() {
        assert_eq!(fields(r#"exec sh -c "x y""#), ["exec", "sh", "-c", "x y"]);
        assert_eq!(fields(r#""a \"b\" \\c \d""#), [r#"a "b" \c \d"#]);
        assert_eq!(fields(r#""it's""#), ["it's"]);
        assert_eq!(fields(r#""""#), [""]);
        // What `echo 'exec sh -c "x y"' > ctl` delivers.
        assert_eq!(
            fields("exec sh -c \"echo 'hi there'\"\n"),
            ["exec", "sh", "-c", "echo 'hi there'"]
        );
    }

    #[test]
    fn backslash_outside_quotes_is_literal() {
        assert_eq!(fields(r"a\ b"), [r"a\", "b"]);
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(
            parse("exec 'abc"),
            Err(ParseError::Unterminated {
                quote: QuoteKind::Single,
                at: 5
            })
        );
        assert_eq!(
            parse("exec \"abc\\\""),
            Err(ParseError::Unterminated {
                quote: QuoteKind::Double,
                at: 5
            })
        );
        assert_eq!(
            parse("x 'it''").unwrap_err().to_string(),
            "unterminated ' quote at byte 2"
        );
    }

    #[test]
    fn quote_round_trips() {
        for f in ["plain", "", "a b", "it's", "\"", "tab\there"] {
            let line = format!("verb {}", quote(f));
            assert_eq!(fields(&line), ["verb", f], "{line}");
        }
        assert!(matches!(quote("plain"), Cow::Borrowed("plain")));
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn lookup_finds_verb_and_checks_counts() {
        assert_eq!(lookup(TABLE, &fields("exec ls")).unwrap().verb, "exec");
        assert_eq!(lookup(TABLE, &fields("kill")).unwrap().verb, "kill");
        assert_eq!(lookup(TABLE, &fields("kill 9")).unwrap().verb, "kill");
        assert_eq!(lookup(TABLE, &fields("halt")).unwrap().verb, "halt");
    }

    #[test]
    fn lookup_errors_quote_the_input() {
        let err = |line: &str| lookup(TABLE, &fields(line)).unwrap_err().to_string();
        assert_eq!(err(""), "empty control message");
        assert_eq!(err("exce ls"), "unknown verb 'exce' (did you mean 'exec'?)");
        assert_eq!(err("kil"), "unknown verb 'kil' (did you mean 'kill'?)");
        assert_eq!(err("reboot"), "unknown verb 'reboot'");
        assert_eq!(err("EXEC ls"), "unknown verb 'EXEC'");
        assert_eq!(err("exec"), "usage: exec CMD [ARG...]");
        assert_eq!(err("kill 9 now"), "usage: kill [SIGNAL]");
        assert_eq!(err("halt now"), "usage: halt");
    }

    #[test]
    fn long_verbs_are_shortened_in_errors() {
        let verb = "x".repeat(10_000);
        let msg = lookup(TABLE, &[verb]).unwrap_err().to_string();
        assert!(msg.len() < 100, "{msg}");
        assert!(msg.ends_with("...'"), "{msg}");
    }

    #[test]
    fn usage_text_has_one_line_per_verb() {
        assert_eq!(
            usage_text(TABLE),
            "exec CMD [ARG...]\nkill [SIGNAL]\nhalt\n"
        );
        assert_eq!(usage_text(&[]), "");
    }

    #[test]
    fn lines_splits_a_write_in_order() {
        assert_eq!(
            lines(b"exec a\r\n\n  \nkill 9\nhalt").unwrap(),
            ["exec a", "kill 9", "halt"]
        );
        assert!(lines(b"\n").unwrap().is_empty());
        assert!(lines(b"").unwrap().is_empty());
        assert_eq!(
            lines(b"ok\n\xff\n"),
            Err(ParseError::NotUtf8 { valid_up_to: 3 })
        );
        assert_eq!(
            lines(b"\xc3").unwrap_err().to_string(),
            "control message is not valid UTF-8 (at byte 0)"
        );
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("exce", "exec"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in any::<String>()) {
            let _ = parse(&line);
        }

        #[test]
        fn parse_never_panics_on_quote_soup(line in "[ '\"\\\\a\t\n]{0,40}") {
            let _ = parse(&line);
        }

        #[test]
        fn quoted_fields_round_trip(fs in proptest::collection::vec(any::<String>(), 0..6)) {
            // Newlines cannot be quoted onto one line in a way `lines` keeps,
            // but `parse` alone must still read them back.
            let line = fs.iter().map(|f| quote(f).into_owned()).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(parse(&line).unwrap(), fs);
        }

        #[test]
        fn lines_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = lines(&data);
        }
    }
}
