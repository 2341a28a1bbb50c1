//! grid(1) names everything the `grid` binary has, and its examples are
//! commands the code accepts.
//!
//! - Every subcommand (from `grid --help` and `grid help`) is in SYNOPSIS
//!   and heads a `.TP` paragraph, and every usage line `grid help` prints
//!   is a line of SYNOPSIS.
//! - Every flag, long and short, that `grid --help` or `grid COMMAND
//!   --help` prints is in SYNOPSIS or in a `.TP` heading.
//! - Every flag of mount.grid's usage line (the binary run through a link
//!   named `mount.grid`) heads a `.TP` paragraph.
//! - Every `grid`, `mount -t grid` and `mount.grid` command of EXAMPLES
//!   parses, mount options included, and so do the options of every
//!   fstab line of type `grid`.
//!
//! The page is roff; the checks read it after stripping escapes and macro
//! names, so `\-\-addr` counts as `--addr` and `.BI cat " PATH..."` as
//! `cat PATH...`. One run reports everything that is missing.

use grid_tests::manpage::{collapse, has_word, plain_line};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use grid::cli::{Cli, Cmd};
use grid::helper;
use grid::mount::MountOptions;

const PAGE: &str = "man/grid.1";

/// The page as plain lines, each with the macro that began it (empty for
/// text lines).
struct Page {
    lines: Vec<(String, String)>,
}

impl Page {
    fn load() -> Page {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PAGE);
        let src = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Page {
            lines: src.lines().filter_map(plain_line).collect(),
        }
    }

    /// The lines of section `sh`, up to the next `.SH`.
    fn section(&self, sh: &str) -> Vec<&(String, String)> {
        let mut out = Vec::new();
        let mut inside = false;
        let mut found = false;
        for line in &self.lines {
            if line.0 == "SH" {
                inside = line.1.trim() == sh;
                found |= inside;
            } else if inside {
                out.push(line);
            }
        }
        assert!(found, "{PAGE} has no section {sh}");
        out
    }

    /// SYNOPSIS as plain text, one line per `.br` or `.PP` line, with
    /// blanks inside brackets dropped: `grid [-a ADDR] ls [-l] PATH...`.
    fn synopsis(&self) -> Vec<String> {
        let mut out = vec![String::new()];
        for (mac, text) in self.section("SYNOPSIS") {
            match mac.as_str() {
                "br" | "PP" | "LP" | "P" => out.push(String::new()),
                _ => {
                    let last = out.last_mut().expect("one line at least");
                    last.push(' ');
                    last.push_str(text);
                }
            }
        }
        out.iter()
            .map(|l| collapse(l).replace("[ ", "[").replace(" ]", "]"))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The heading of every `.TP` paragraph.
    fn tp_tags(&self) -> Vec<String> {
        self.lines
            .windows(2)
            .filter(|w| w[0].0 == "TP")
            .map(|w| collapse(&w[1].1))
            .collect()
    }

    /// The text lines of the `.EX` blocks of EXAMPLES, block by block.
    fn example_blocks(&self) -> Vec<Vec<String>> {
        let mut blocks = Vec::new();
        let mut block: Option<Vec<String>> = None;
        for (mac, text) in self.section("EXAMPLES") {
            match (mac.as_str(), block.as_mut()) {
                ("EX", _) => block = Some(Vec::new()),
                ("EE", Some(_)) => blocks.extend(block.take()),
                ("", Some(b)) => b.push(text.clone()),
                _ => {}
            }
        }
        blocks
    }
}

/// Runs `program` with `args`; its exit code, stdout and stderr.
fn run(program: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .args(args)
        .env_remove("GRID_ADDR")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} {args:?}: {e}", program.display()));
    let text = |b: Vec<u8>| String::from_utf8(b).expect("output is UTF-8");
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// `grid ARGS`, which must succeed; its standard output.
fn grid(args: &[&str]) -> String {
    let (code, stdout, stderr) = run(Path::new(env!("CARGO_BIN_EXE_grid")), args);
    assert_eq!(
        code,
        Some(0),
        "grid {} failed:\n{stdout}{stderr}",
        args.join(" ")
    );
    stdout
}

/// The flags of a clap help text: the leading `-x, --long <VALUE>` part
/// of each line of its `Options:` section.
fn help_flags(help: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut inside = false;
    for line in help.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            inside = line.trim_end() == "Options:";
            continue;
        }
        let line = line.trim_start();
        if !inside || !line.starts_with('-') {
            continue;
        }
        for word in line.split_whitespace() {
            if word.starts_with('<') {
                continue;
            }
            let flag = word.trim_end_matches(',');
            if !flag.starts_with('-') {
                break;
            }
            flags.push(flag.to_owned());
        }
    }
    flags
}

/// The subcommands of `grid --help`: the first word of each line of its
/// `Commands:` section.
fn help_commands(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end() == "Commands:";
        } else if inside {
            out.extend(line.split_whitespace().next().map(str::to_owned));
        }
    }
    out
}

/// The usage lines of `grid help` (those not indented, before the blank
/// line), each with its subcommand: the first word after `grid` that is
/// not inside brackets.
fn usage_lines(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| !l.trim().is_empty()) {
        if line.starts_with(' ') {
            continue;
        }
        let mut depth = 0usize;
        let mut name = None;
        for word in line.split_whitespace().skip(1) {
            let opens = word.matches('[').count();
            let closes = word.matches(']').count();
            if depth == 0 && opens == 0 {
                name = Some(word.to_owned());
                break;
            }
            depth = (depth + opens).saturating_sub(closes);
        }
        let name = name.unwrap_or_else(|| panic!("no subcommand in usage line '{line}'"));
        out.push((name, collapse(line)));
    }
    out
}

/// Splits a shell command line into simple commands, each a list of
/// words: quotes removed, split at `|`, `||`, `&&`, `;` and `&`.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '|' | '&' | ';' => {
                chars.next_if(|&n| n == c && c != ';');
                let cmd = commands.last_mut().expect("one command at least");
                cmd.extend(word.take());
                commands.push(Vec::new());
            }
            c if c.is_whitespace() => {
                let cmd = commands.last_mut().expect("one command at least");
                cmd.extend(word.take());
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    commands.last_mut().expect("one command").extend(word);
    commands.retain(|c| !c.is_empty());
    commands
}

/// What EXAMPLES checked, for the test to know it was not vacuous.
#[derive(Default)]
struct Checked {
    grid: Vec<String>,
    mounts: usize,
    fstab: usize,
}

/// Checks one example command; a problem if the code would refuse it.
fn check_example(words: &[String], checked: &mut Checked) -> Option<String> {
    // Skip `VAR=value` assignments before the command.
    let assignment = |w: &String| {
        w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let start = words.iter().position(|w| !assignment(w))?;
    let words = &words[start..];
    let shown = words.join(" ");
    let program = Path::new(&words[0]).file_name()?.to_str()?;
    let helper_args = |args: &[String]| -> Result<(), String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let a = helper::parse(&args)?;
        MountOptions::parse(&a.options).map(|_| ())
    };
    let result = match program {
        "grid" => {
            checked.grid.push(shown.clone());
            match Cli::try_parse_from(words) {
                Ok(Cli {
                    cmd:
                        Cmd::Mount {
                            options: Some(o), ..
                        },
                    ..
                }) => MountOptions::parse(&o).map(|_| ()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        // mount(8) runs `mount.grid SPEC DIR -o OPTIONS ...`, with the
        // same flags in another order; mount.grid takes them anywhere.
        "mount" if words.windows(2).any(|w| w[0] == "-t" && w[1] == "grid") => {
            checked.mounts += 1;
            helper_args(&words[1..])
        }
        "mount.grid" => {
            checked.mounts += 1;
            helper_args(&words[1..])
        }
        _ => return None,
    };
    result
        .err()
        .map(|e| format!("'{shown}': {}", e.lines().next().unwrap_or("refused")))
}

#[test]
fn grid_1_names_every_command_and_flag() {
    let page = Page::load();
    let synopsis = page.synopsis();
    let synopsis_text = synopsis.join("\n");
    let tags = page.tp_tags();
    let tags_text = tags.join("\n");
    let mut problems = Vec::new();

    // Subcommands, from both lists the binary prints.
    let top_help = grid(&["--help"]);
    let commands = help_commands(&top_help);
    assert!(
        commands.len() >= 8,
        "found too few commands in grid --help ({commands:?}); has its format changed?\n{top_help}"
    );
    let help_text = grid(&["help"]);
    let usage = usage_lines(&help_text);
    let usage_names: Vec<String> = usage.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        commands, usage_names,
        "grid --help and grid help list different commands"
    );
    for cmd in &commands {
        if !synopsis
            .iter()
            .any(|l| l.starts_with("grid") && has_word(l, cmd))
        {
            problems.push(format!("command '{cmd}': not in SYNOPSIS"));
        }
        if !tags
            .iter()
            .any(|t| t.split_whitespace().next() == Some(cmd))
        {
            problems.push(format!("command '{cmd}': no .TP heading '{cmd} ...'"));
        }
    }
    for (cmd, line) in &usage {
        if !synopsis.iter().any(|l| l == line) {
            problems.push(format!(
                "command '{cmd}': grid help's usage line '{line}' is not a SYNOPSIS line"
            ));
        }
    }

    // Flags, from every help text.
    let mut helps = vec![("grid --help".to_owned(), top_help.clone())];
    for cmd in &commands {
        helps.push((format!("grid {cmd} --help"), grid(&[cmd, "--help"])));
    }
    let mut seen = Vec::new();
    for (source, help) in &helps {
        let flags = help_flags(help);
        assert!(
            flags.iter().any(|f| f == "--help"),
            "found no --help in the options of {source}; has its format changed?\n{help}"
        );
        for flag in flags {
            if seen.contains(&flag) {
                continue;
            }
            if !has_word(&synopsis_text, &flag) && !has_word(&tags_text, &flag) {
                problems.push(format!(
                    "flag {flag} (from {source}): not in SYNOPSIS or a .TP heading"
                ));
            }
            seen.push(flag);
        }
    }
    for flag in [
        "-a",
        "--addr",
        "-l",
        "-o",
        "-b",
        "--daemon",
        "-V",
        "--version",
    ] {
        assert!(
            seen.iter().any(|f| f == flag),
            "{flag} not found in any help text; has the help format changed? {seen:?}"
        );
    }

    // mount.grid: the binary run by that name.
    if !synopsis
        .iter()
        .any(|l| l.split_whitespace().next() == Some("mount.grid"))
    {
        problems.push("mount.grid: not in SYNOPSIS".to_owned());
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let link: PathBuf = dir.path().join(helper::PROGRAM);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_grid"), &link).expect("link mount.grid");
    let (code, _, stderr) = run(&link, &["-h"]);
    assert_eq!(code, Some(1), "mount.grid -h: {stderr}");
    let usage_line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mount.grid: usage: "))
        .unwrap_or_else(|| panic!("mount.grid -h printed no usage line: {stderr}"));
    let mut helper_flags = Vec::new();
    for word in usage_line.split_whitespace() {
        let Some(letters) = word.trim_start_matches('[').strip_prefix('-') else {
            continue;
        };
        let letters = letters.trim_end_matches(']');
        helper_flags.extend(letters.chars().map(|c| format!("-{c}")));
    }
    assert!(
        helper_flags.len() >= 5,
        "found too few flags in mount.grid's usage ({helper_flags:?}): {usage_line}"
    );
    for flag in helper_flags {
        if !has_word(&tags_text, &flag) {
            problems.push(format!(
                "mount.grid flag {flag} (from its usage line): no .TP heading"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{PAGE} is missing:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn grid_1_examples_are_accepted() {
    let page = Page::load();
    let mut checked = Checked::default();
    let mut problems = Vec::new();
    for block in page.example_blocks() {
        // In a transcript only the `$ ` lines are commands; the rest is
        // output.
        let transcript = block.iter().any(|l| l.starts_with("$ "));
        for line in &block {
            let line = match line.strip_prefix("$ ") {
                Some(cmd) => cmd,
                None if transcript => continue,
                None => line.as_str(),
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() == 6 && fields[2] == "grid" && !line.starts_with("grid ") {
                checked.fstab += 1;
                if let Err(e) = MountOptions::parse(fields[3]) {
                    problems.push(format!("fstab line '{line}': {e}"));
                }
                continue;
            }
            for words in shell_commands(line) {
                problems.extend(check_example(&words, &mut checked));
            }
        }
    }
    assert!(
        checked.grid.len() >= 5,
        "found too few grid commands in EXAMPLES: {:?}",
        checked.grid
    );
    assert!(
        checked.grid.iter().any(|c| c.starts_with("grid mount -b")),
        "EXAMPLES has no 'grid mount -b': {:?}",
        checked.grid
    );
    assert!(checked.mounts >= 1, "EXAMPLES has no 'mount -t grid'");
    assert!(checked.fstab >= 1, "EXAMPLES has no fstab line");
    assert!(
        problems.is_empty(),
        "{PAGE}: EXAMPLES the code refuses:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn shell_commands_split_like_sh() {
    let words = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shell_commands("echo 'a b' | grid write /ctl && ls x &"),
        [
            words(&["echo", "a b"]),
            words(&["grid", "write", "/ctl"]),
            words(&["ls", "x"])
        ]
    );
    assert_eq!(
        shell_commands("GRID_ADDR='tcp!h!1' grid status"),
        [words(&["GRID_ADDR=tcp!h!1", "grid", "status"])]
    );
}
