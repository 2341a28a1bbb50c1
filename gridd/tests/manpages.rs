//! The man pages name everything gridd serves and accepts.
//!
//! - gridfs(4): every file in the root of the namespace (in SYNOPSIS), every
//!   `/ctl` verb (as a message heading, and the usage text a read of `/ctl`
//!   returns, verbatim), and every keyword of `/status`.
//! - gridd(8): every flag `gridd --help` prints (long flags in SYNOPSIS,
//!   every flag as an option heading).
//! - grid.toml(5): every key of the default `grid.toml`, as a heading, with
//!   its default value where that value is not machine-dependent.
//!
//! The pages are roff; the checks read them after stripping escapes and
//! macro names, so `\-\-state` counts as `--state` and `.BI name " NAME"` as
//! `name NAME`.

use grid_tests::manpage::{collapse, has_word, plain_line};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gridd::namespace::{Grid, CTL_TABLE};

/// A man page, read and split into plain lines.
struct Page {
    name: &'static str,
    /// Each source line as text: escapes removed, macro names dropped,
    /// with the macro that began it (empty for text lines).
    lines: Vec<(String, String)>,
}

impl Page {
    fn load(name: &'static str) -> Page {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../man")
            .join(name);
        let src = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("man page {}: {e}", path.display()));
        Page {
            name,
            lines: src.lines().filter_map(plain_line).collect(),
        }
    }

    /// The lines of section `sh` (a `.SH` title), up to the next `.SH`.
    fn section(&self, sh: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut inside = false;
        for (mac, text) in &self.lines {
            if mac == "SH" {
                inside = text.trim() == sh;
            } else if inside {
                out.push(text.as_str());
            }
        }
        assert!(
            !out.is_empty() || self.lines.iter().any(|(m, t)| m == "SH" && t.trim() == sh),
            "man/{}: has no section {sh}",
            self.name
        );
        out
    }

    /// The heading line of every `.TP` paragraph.
    fn tp_tags(&self) -> Vec<&str> {
        self.lines
            .windows(2)
            .filter(|w| w[0].0 == "TP")
            .map(|w| w[1].1.as_str())
            .collect()
    }

    /// The text of the `.TP` paragraph whose heading starts with `tag`, up
    /// to the next paragraph or section macro.
    fn tp_body(&self, tag: &str) -> Option<String> {
        let start = self
            .lines
            .windows(2)
            .position(|w| w[0].0 == "TP" && w[1].1.starts_with(tag))?;
        let body: Vec<&str> = self.lines[start + 1..]
            .iter()
            .skip(1)
            .take_while(|(m, _)| !matches!(m.as_str(), "TP" | "PP" | "SS" | "SH"))
            .map(|(_, t)| t.as_str())
            .collect();
        Some(body.join(" "))
    }

    fn all_text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What a page fails to document, gathered so one run reports all of it.
struct Report {
    page: &'static str,
    problems: Vec<String>,
}

impl Report {
    fn new(page: &'static str) -> Report {
        Report {
            page,
            problems: Vec::new(),
        }
    }

    /// Notes the items of `what` that are missing.
    fn missing(&mut self, what: &str, missing: Vec<String>) {
        if !missing.is_empty() {
            self.problems
                .push(format!("{what}:\n    {}", missing.join("\n    ")));
        }
    }

    fn check(self) {
        assert!(
            self.problems.is_empty(),
            "man/{} is missing:\n  {}",
            self.page,
            self.problems.join("\n  ")
        );
    }
}

fn test_grid() -> std::sync::Arc<Grid> {
    let (grid, problems) = Grid::new(
        "manpages".to_owned(),
        "0".repeat(64),
        PathBuf::from("/nonexistent/grid.toml"),
        &BTreeMap::new(),
    );
    assert!(problems.is_empty(), "{problems:?}");
    *grid.listen.lock().expect("listen lock") = vec![
        ninep::Addr::Unix(PathBuf::from("/var/lib/grid/gridd.sock")),
        ninep::Addr::Tcp {
            host: "127.0.0.1".to_owned(),
            port: 5640,
        },
    ];
    grid
}

#[tokio::test]
async fn gridfs_4_lists_every_root_file_and_ctl_verb() {
    let page = Page::load("gridfs.4");
    let mut report = Report::new(page.name);
    let grid = test_grid();

    // Every file of the root, in SYNOPSIS, as /NAME.
    let root = grid.root();
    let entries = root.readdir().await.expect("readdir of the root");
    assert!(!entries.is_empty(), "the namespace root is empty");
    let synopsis = page.section("SYNOPSIS").join("\n");
    let missing: Vec<String> = entries
        .iter()
        .map(|e| format!("/{}", e.name))
        .filter(|f| !has_word(&synopsis, f))
        .map(|f| format!("{f} (served in the root; not in SYNOPSIS)"))
        .collect();
    report.missing("every file of the namespace root", missing);

    // Every /ctl verb as a message heading: `.TP` then `verb USAGE`.
    let tags: Vec<String> = page.tp_tags().iter().map(|t| collapse(t)).collect();
    let missing: Vec<String> = CTL_TABLE
        .iter()
        .filter(|cmd| !tags.iter().any(|t| *t == collapse(&cmd.usage_line())))
        .map(|cmd| {
            format!(
                "/ctl verb '{}' (no .TP heading '{}')",
                cmd.verb,
                cmd.usage_line()
            )
        })
        .collect();
    report.missing("every /ctl verb", missing);

    // What a read of /ctl returns, verbatim, as consecutive lines.
    let usage = cmdbuf::usage_text(CTL_TABLE);
    let want: Vec<&str> = usage.lines().collect();
    let lines: Vec<&str> = page.lines.iter().map(|(_, t)| t.as_str()).collect();
    if !lines.windows(want.len()).any(|w| w == want.as_slice()) {
        report.missing(
            "what a read of /ctl returns, as these lines together",
            want.iter().map(|l| l.to_string()).collect(),
        );
    }

    // Every keyword of /status, as a heading `keyword VALUE`.
    let raw_tags = page.tp_tags();
    let missing: Vec<String> = grid
        .status_text()
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|kw| {
            !raw_tags.iter().any(|t| {
                t.strip_prefix(kw)
                    .and_then(|r| r.strip_prefix(' '))
                    .is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            })
        })
        .map(|kw| format!("/status line '{kw} ...' (no .TP heading '{kw} VALUE')"))
        .collect();
    report.missing("every line of /status", missing);
    report.check();
}

#[test]
fn gridd_8_lists_every_flag() {
    let page = Page::load("gridd.8");
    let mut report = Report::new(page.name);
    let out = Command::new(env!("CARGO_BIN_EXE_gridd"))
        .arg("--help")
        .output()
        .expect("run gridd --help");
    assert!(out.status.success(), "gridd --help failed: {out:?}");
    let help = String::from_utf8(out.stdout).expect("help is UTF-8");

    let mut long = Vec::new();
    let mut short = Vec::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let flag: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if let Some(name) = flag.strip_prefix("--") {
            if !name.is_empty() && !long.contains(&flag) {
                long.push(flag.clone());
            }
        } else if flag.len() == 2 && flag.starts_with('-') && !short.contains(&flag) {
            short.push(flag.clone());
        }
    }
    assert!(
        long.len() >= 6,
        "found too few flags in gridd --help ({long:?}); has its format changed?\n{help}"
    );

    let synopsis = page.section("SYNOPSIS").join("\n");
    let tags = page.tp_tags().join("\n");
    let mut missing = Vec::new();
    for flag in &long {
        if !has_word(&synopsis, flag) {
            missing.push(format!("{flag} (not in SYNOPSIS)"));
        }
        if !has_word(&tags, flag) {
            missing.push(format!("{flag} (no .TP heading)"));
        }
    }
    for flag in &short {
        if !has_word(&tags, flag) {
            missing.push(format!("{flag} (no .TP heading)"));
        }
    }
    report.missing("every flag of gridd --help", missing);
    report.check();
}

#[test]
fn grid_toml_5_lists_every_default_key() {
    let page = Page::load("grid.toml.5");
    let mut report = Report::new(page.name);
    let text = gridd::config::default_text("pi", Path::new("/var/lib/grid"));
    let table: toml::Table = toml::from_str(&text).expect("the default grid.toml parses");
    assert!(!table.is_empty(), "the default grid.toml has no keys");

    let tags: Vec<String> = page.tp_tags().iter().map(|t| collapse(t)).collect();
    let mut missing = Vec::new();
    let mut check = |key: String, heading: String, default: Option<String>| {
        if !tags.iter().any(|t| t.starts_with(&heading)) {
            missing.push(format!("key '{key}' (no .TP heading starting '{heading}')"));
            return;
        }
        if let Some(d) = default {
            let body = page.tp_body(&heading).unwrap_or_default();
            if !has_word(&body, &d) {
                missing.push(format!(
                    "key '{key}': its default {d} is not in its paragraph"
                ));
            }
        }
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(sub) => {
                check(key.clone(), format!("[{key}]"), None);
                for sub_key in sub.keys() {
                    check(format!("{key}.{sub_key}"), format!("{sub_key} ="), None);
                }
            }
            // The default name is the host name, which the page cannot show.
            toml::Value::String(_) => check(key.clone(), format!("{key} ="), None),
            other => check(key.clone(), format!("{key} ="), Some(other.to_string())),
        }
    }
    report.missing("every key of the default grid.toml", missing);

    // The page's copy of the default file must be the file itself.
    let all = page.all_text();
    let missing: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !all.lines().any(|p| p == *l))
        .map(str::to_owned)
        .collect();
    report.missing("lines of the default file, verbatim (EXAMPLES)", missing);
    report.check();
}

#[tokio::test]
async fn gridfs_4_lists_every_cpu_file_and_ctl_verb() {
    let page = Page::load("gridfs.4");
    let mut report = Report::new(page.name);
    let grid = test_grid();
    let synopsis = page.section("SYNOPSIS").join("\n");

    // /cpu's own files, and a job's (made by opening clone).
    let cpu = grid.root().walk("cpu").await.expect("/cpu is served");
    let mut files: Vec<String> = Vec::new();
    for e in cpu.readdir().await.expect("readdir /cpu") {
        files.push(format!("/cpu/{}", e.name));
    }
    let clone = cpu.walk("clone").await.expect("walk clone");
    let opened = clone
        .open(ninep_server::OpenMode::READ)
        .await
        .expect("open clone");
    let n = String::from_utf8(opened.handle.read(0, 64).await.expect("read N")).expect("utf8");
    let job = cpu.walk(n.trim()).await.expect("walk N");
    for e in job.readdir().await.expect("readdir N") {
        files.push(format!("/cpu/N/{}", e.name));
    }
    job.remove().await.expect("remove N");
    assert!(files.len() >= 9, "{files:?}");
    let missing: Vec<String> = files
        .into_iter()
        .filter(|f| !has_word(&synopsis, f))
        .map(|f| format!("{f} (served; not in SYNOPSIS)"))
        .collect();
    report.missing("every file of /cpu", missing);

    // Every /cpu/N/ctl verb as a message heading: `.TP` then `verb USAGE`.
    let tags: Vec<String> = page.tp_tags().iter().map(|t| collapse(t)).collect();
    let missing: Vec<String> = grid_cpu::ctl::CTL_TABLE
        .iter()
        .filter(|cmd| !tags.iter().any(|t| *t == collapse(&cmd.usage_line())))
        .map(|cmd| {
            format!(
                "/cpu/N/ctl verb '{}' (no .TP heading '{}')",
                cmd.verb,
                cmd.usage_line()
            )
        })
        .collect();
    report.missing("every /cpu/N/ctl verb", missing);

    // Every keyword of /cpu/info, as a word of its paragraph.
    let info = grid_tests_read(&cpu, "info").await;
    let body = page.tp_body("/cpu/info").unwrap_or_default();
    let missing: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|kw| !has_word(&body, kw))
        .map(|kw| format!("/cpu/info line '{kw} ...'"))
        .collect();
    report.missing("every line of /cpu/info", missing);
    report.check();
}

async fn grid_tests_read(dir: &std::sync::Arc<dyn ninep_server::Node>, name: &str) -> String {
    let node = dir.walk(name).await.expect("walk");
    let opened = node.open(ninep_server::OpenMode::READ).await.expect("open");
    String::from_utf8(opened.handle.read(0, 65536).await.expect("read")).expect("utf8")
}
