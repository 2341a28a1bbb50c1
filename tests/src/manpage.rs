//! Reading roff man pages as plain text, for the tests that check each
//! page documents every file, verb and flag of the code.

/// Macros whose arguments alternate fonts and are joined without blanks.
pub const ALTERNATING: &[&str] = &["BI", "IB", "BR", "RB", "IR", "RI"];

/// One roff source line as plain text, with its macro name; `None` for
/// comments.
pub fn plain_line(line: &str) -> Option<(String, String)> {
    if line.starts_with(".\\\"") || line.starts_with("'\\\"") {
        return None;
    }
    let Some(rest) = line.strip_prefix('.') else {
        return Some((String::new(), unescape(line)));
    };
    let (mac, args) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let args = roff_args(args);
    let sep = if ALTERNATING.contains(&mac) { "" } else { " " };
    Some((mac.to_owned(), unescape(&args.join(sep))))
}

/// Splits macro arguments: blank-separated, `"..."` quoted, `""` inside
/// quotes standing for one `"`.
pub fn roff_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else {
            return args;
        };
        let mut arg = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        arg.push('"');
                        continue;
                    }
                    break;
                }
                arg.push(c);
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
                arg.push(c);
            }
        }
        args.push(arg);
    }
}

/// Removes the escapes the pages use: fonts, `\-`, `\&`, `\%`, `\c`,
/// `\e` and the `\(xx` characters.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => match chars.next() {
                Some('(') => {
                    chars.next();
                    chars.next();
                }
                Some('[') => for _ in chars.by_ref().take_while(|&c| c != ']') {},
                _ => {}
            },
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push_str(match name.as_str() {
                    "aq" => "'",
                    "dq" | "lq" | "rq" => "\"",
                    "em" | "en" => "-",
                    _ => "",
                });
            }
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some(' ') => out.push(' '),
            Some('&' | '%' | 'c') | None => {}
            Some(other) => out.push(other),
        }
    }
    out
}

/// Whether `word` occurs in `text` with no letter, digit, `-` or `_` right
/// before or after it.
pub fn has_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// `s` with every run of white space made one blank.
pub fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
