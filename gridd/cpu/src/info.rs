//! `/cpu/info`, and the time format of the status line.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Reader, Shared};

/// The text of `/cpu/info` for `reader`: `key value` lines.
pub(crate) fn info_text(shared: &Shared, reader: &Reader) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        mem.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let running = shared
        .lock()
        .values()
        .filter(|e| e.job.is_running() && (reader.sees_all || e.job.owner == reader.name))
        .count();
    format!(
        "cores {cores}\nload {}\nmemtotal {}\nmemavail {}\narch {}\nos {} {}\njobs {running}\nsandbox {}\ncgroups {}\nshare {}\n",
        if load.len() == 3 { load.join(" ") } else { "0 0 0".into() },
        kib("MemTotal:"),
        kib("MemAvailable:"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        release.trim(),
        shared.sandbox_text(),
        shared.cgroups.text(),
        reader.share.text(),
    )
}

/// RFC 3339 in UTC with milliseconds: `2025-11-21T15:40:00.123Z`.
pub fn time_text(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time_text(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(time_text(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(time_text(leap), "2000-02-29T00:00:00.000Z");
    }
}
