//! Allocator tuning for 9P's large, short-lived buffers.
//!
//! Every Tread and Rread of a bulk transfer allocates a buffer of up to
//! msize (1 MiB). glibc serves blocks that large with mmap, or trims its
//! heap after they are freed, so each read faults its buffer in afresh:
//! the benchmark (bench/README.md) measured page faults as the largest
//! cost of bulk reads. Raising both thresholds keeps such buffers in the
//! heap; an idle gridd still uses a few MiB.

/// Keep buffers up to 4 MiB in the heap and trim it only past 64 MiB free.
/// Call before starting threads.
pub fn tune_for_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocator parameters; it is
    // called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
