//! The `grid` command and `mount.grid`: a grid's namespace from the shell.
//!
//! `grid` is to gridd what plan9port's 9p(1) is to a 9P server: it dials
//! an address, attaches to the root of the namespace (gridfs(4)), does one
//! thing (`ls`, `cat`, `write`, `stat`, `mkdir`, `rm`, `status`) and exits.
//! `grid mount` serves the namespace to the kernel through FUSE, and
//! `mount.grid` is the helper mount(8) runs for `mount -t grid` and fstab.
//! grid(1) is the user's documentation; this crate holds no knowledge of
//! what the files mean beyond their names.
//!
//! The one-shot commands speak 9P2000.u, whose Rerror carries the server's
//! text (`ctl: unknown verb 'exce'`), which the command prints as it is;
//! the mount speaks 9P2000.L, whose errnos are what the kernel wants.
//!
//! # Layout
//!
//! - [`main`] (here): picks `grid` or `mount.grid` by the name the binary
//!   was run as; `main.rs` is one call to it.
//! - [`cli`]: flags and subcommands (clap), `grid help`, exit codes.
//! - [`ns`]: the session with gridd: dial, attach, namespace paths, and
//!   [`ns::Failure`], the `grid: PATH: message` error line.
//! - [`commands`]: the one-shot subcommands, streaming stdin and stdout.
//! - [`run`]: `grid run`: a job through the files of `/cpu`.
//! - [`format`](mod@format): pure text formats: `ls -l` lines, `stat` lines, modes,
//!   times, and where `write` splits its input.
//! - [`mount`]: `grid mount` and `grid umount`: mount options, foreground
//!   and background runs, signals, unmounting.
//! - `fuse`: the FUSE file system: kernel requests to 9P2000.L.
//! - [`helper`]: `mount.grid`'s argument convention (mount(8)). Cargo
//!   cannot name a binary `mount.grid`, so it is the `grid` binary run
//!   through a link of that name (`/sbin/mount.grid -> grid`), as
//!   `mount.ntfs-3g` is `ntfs-3g`.
//!
//! # Non-goals
//!
//! Caching beyond the kernel's one-second attribute cache, authentication,
//! and reconnecting a mount whose gridd went away (it unmounts instead).

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cli;
pub mod commands;
pub mod format;
mod fuse;
pub mod helper;
pub mod mount;
pub mod ns;
pub mod peer;
pub mod run;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Runs `grid`, or `mount.grid` when the program name (`args[0]`) is
/// `mount.grid`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str());
    if name == Some(helper::PROGRAM) {
        helper::main(args)
    } else {
        cli::main(args)
    }
}
