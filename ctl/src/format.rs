//! Text formats of the one-shot commands, and where `write` cuts its
//! input. Pure functions; grid(1) documents each format.

use ninep::{dm, Stat};

/// The type letter of a stat: `d`, `l` or `-` (ls(1)'s first column).
fn type_char(mode: u32) -> char {
    if mode & dm::DIR != 0 {
        'd'
    } else if mode & dm::SYMLINK != 0 {
        'l'
    } else {
        '-'
    }
}

/// What `stat` prints after `type`.
fn type_word(mode: u32) -> &'static str {
    if mode & dm::DIR != 0 {
        "dir"
    } else if mode & dm::SYMLINK != 0 {
        "symlink"
    } else if mode & (dm::DEVICE | dm::NAMEDPIPE | dm::SOCKET) != 0 {
        "other"
    } else {
        "file"
    }
}

/// The ten-character mode of ls(1): `drwxr-xr-x`, `-rw-r--r--`, with `s`
/// or `S` for set-uid and set-gid.
pub fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(type_char(mode));
    let special = [mode & dm::SETUID != 0, mode & dm::SETGID != 0, false];
    for (i, set_id) in special.iter().enumerate() {
        let bits = (mode >> (6 - 3 * i)) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, set_id) {
            (true, true) => 's',
            (false, true) => 'S',
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Unix permission bits of a stat mode, set-id bits included: `0o4755`.
pub fn perm_bits(mode: u32) -> u32 {
    let mut perm = mode & 0o777;
    if mode & dm::SETUID != 0 {
        perm |= 0o4000;
    }
    if mode & dm::SETGID != 0 {
        perm |= 0o2000;
    }
    perm
}

/// One `ls -l` line for `st`, shown as `name`: mode, owner, group, length,
/// modification time (`YYYY-MM-DD HH:MM`, `utc_offset` seconds east of
/// UTC), name, and `-> TARGET` for a symbolic link.
pub fn ls_line(st: &Stat, name: &str, utc_offset: i64) -> String {
    let mut line = format!(
        "{} {} {} {} {} {}",
        mode_string(st.mode),
        or_dash(&st.uid),
        or_dash(&st.gid),
        st.length,
        clock_time(i64::from(st.mtime) + utc_offset),
        name
    );
    if st.mode & dm::SYMLINK != 0 && !st.extension.is_empty() {
        line.push_str(" -> ");
        line.push_str(&st.extension);
    }
    line
}

/// What `stat` prints: `key value` lines.
pub fn stat_lines(st: &Stat) -> String {
    let mut s = format!(
        "name {}\nqid {} {}\ntype {}\nmode {:04o}\nsize {}\nmtime {}\nuid {}\ngid {}\n",
        st.name,
        st.qid.path,
        st.qid.version,
        type_word(st.mode),
        perm_bits(st.mode),
        st.length,
        st.mtime,
        or_dash(&st.uid),
        or_dash(&st.gid),
    );
    if st.mode & dm::SYMLINK != 0 {
        s.push_str(&format!("target {}\n", st.extension));
    }
    s
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `YYYY-MM-DD HH:MM` for `secs` since the epoch, already shifted to the
/// wanted zone.
pub fn clock_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = grid_cpu::info::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Seconds east of UTC of the local zone at `secs` (from localtime_r(3),
/// which reads `TZ` and /etc/localtime).
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are to live locals; localtime_r writes only
    // `tm`, and a zeroed `tm` is a valid value (integers and a null name).
    let ok = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if !ok {
        return 0;
    }
    // SAFETY: localtime_r succeeded, so it initialised `tm`.
    let offset = unsafe { tm.assume_init() }.tm_gmtoff;
    #[allow(clippy::unnecessary_cast)] // c_long is not i64 on every target
    let offset = offset as i64;
    offset
}

/// How many bytes of `buf` the next write of `grid write` carries, at most
/// `unit` (the I/O unit): everything up to the last newline that fits, so
/// control messages arrive whole; a line longer than `unit` is cut at
/// `unit`; a partial last line waits for more input unless `eof`. 0 means
/// "write nothing yet".
pub fn next_write(buf: &[u8], unit: usize, eof: bool) -> usize {
    let unit = unit.max(1);
    let window = &buf[..buf.len().min(unit)];
    if let Some(i) = window.iter().rposition(|&b| b == b'\n') {
        return i + 1;
    }
    if buf.len() >= unit {
        unit
    } else if eof {
        buf.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32) -> Stat {
        Stat {
            name: "x".into(),
            mode,
            uid: "glenda".into(),
            gid: "sys".into(),
            length: 42,
            mtime: 86_400 + 3_600 + 60,
            ..Stat::default()
        }
    }

    #[test]
    fn mode_strings_are_ls_shaped() {
        assert_eq!(mode_string(0o644), "-rw-r--r--");
        assert_eq!(mode_string(dm::DIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(dm::SYMLINK | 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(dm::SETUID | 0o755), "-rwsr-xr-x");
        assert_eq!(mode_string(dm::SETGID | 0o640), "-rw-r-S---");
        assert_eq!(perm_bits(dm::SETUID | dm::DIR | 0o755), 0o4755);
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(clock_time(0), "1970-01-01 00:00");
        assert_eq!(clock_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(clock_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(clock_time(-60), "1969-12-31 23:59");
    }

    #[test]
    fn ls_lines_and_stat_lines() {
        assert_eq!(
            ls_line(&stat(0o644), "notes", 0),
            "-rw-r--r-- glenda sys 42 1970-01-02 01:01 notes"
        );
        assert_eq!(
            ls_line(&stat(0o644), "notes", 3600),
            "-rw-r--r-- glenda sys 42 1970-01-02 02:01 notes"
        );
        let mut link = stat(dm::SYMLINK | 0o777);
        link.extension = "notes".into();
        assert!(ls_line(&link, "l", 0).ends_with(" l -> notes"));
        let text = stat_lines(&stat(dm::DIR | 0o755));
        assert_eq!(
            text,
            "name x\nqid 0 0\ntype dir\nmode 0755\nsize 42\nmtime 90060\nuid glenda\ngid sys\n"
        );
        assert!(stat_lines(&link).ends_with("target notes\n"));
    }

    #[test]
    fn writes_carry_whole_lines() {
        assert_eq!(next_write(b"", 8, true), 0);
        assert_eq!(next_write(b"ab\ncd", 8, false), 3);
        assert_eq!(next_write(b"ab\ncd", 8, true), 3);
        assert_eq!(next_write(b"cd", 8, false), 0);
        assert_eq!(next_write(b"cd", 8, true), 2);
        // A line longer than the unit is cut at the unit.
        assert_eq!(next_write(b"0123456789", 8, false), 8);
        // The last newline that fits wins.
        assert_eq!(next_write(b"a\nb\n0123456789\n", 8, false), 4);
    }
}
