//! The handle of an open regular file: pread/pwrite on a real descriptor.
//!
//! Reads and writes first try `RWF_NOWAIT` on the runtime thread and fall
//! back to the blocking pool when the kernel would have to wait (see the
//! crate docs, "Blocking"). A read may come back short (only part of the
//! range was cached), which 9P allows; a write is always completed, so
//! clients that treat a short write as an error never see one from a
//! partial non-blocking attempt.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ninep_server::{Error, Handle, Result};
use rustix::io::{Errno, IoSlice, ReadWriteFlags};

use crate::node::blocking;

/// Largest read served in one call. The session clamps counts to msize;
/// this only bounds what a count from the wire can make us allocate.
const MAX_IO: usize = 16 << 20;

/// An open regular file.
#[derive(Debug)]
pub(crate) struct FileHandle {
    /// `None` once clunked. The `Arc` lets a call on the blocking pool keep
    /// the descriptor alive past a concurrent clunk.
    fd: Mutex<Option<Arc<OwnedFd>>>,
    /// Whether `RWF_NOWAIT` reads are still worth trying (cleared when the
    /// file system answers `EOPNOTSUPP`).
    nowait_read: AtomicBool,
    /// The same for writes.
    nowait_write: AtomicBool,
}

impl FileHandle {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        FileHandle {
            fd: Mutex::new(Some(Arc::new(fd))),
            nowait_read: AtomicBool::new(true),
            nowait_write: AtomicBool::new(true),
        }
    }

    fn fd(&self) -> Result<Arc<OwnedFd>> {
        self.fd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF).into())
    }
}

#[async_trait]
impl Handle for FileHandle {
    async fn read(&self, offset: u64, count: u32) -> Result<Vec<u8>> {
        let fd = self.fd()?;
        let offset = file_offset(offset)?;
        let count = usize::try_from(count).unwrap_or(MAX_IO).min(MAX_IO);
        if count == 0 {
            return Ok(Vec::new());
        }
        if self.nowait_read.load(Ordering::Relaxed) {
            let mut buf = Vec::with_capacity(count);
            match pread_nowait(fd.as_fd(), &mut buf, offset) {
                Ok(()) => return Ok(buf),
                Err(Errno::AGAIN) => {}
                Err(Errno::OPNOTSUPP) => self.nowait_read.store(false, Ordering::Relaxed),
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        blocking(move || {
            let mut buf = Vec::with_capacity(count);
            let spare = rustix::buffer::spare_capacity(&mut buf);
            rustix::io::pread(&*fd, spare, offset as u64)?;
            Ok(buf)
        })
        .await
    }

    async fn write(&self, offset: u64, data: &[u8]) -> Result<u32> {
        let fd = self.fd()?;
        let offset = file_offset(offset)?;
        let mut done = 0;
        if self.nowait_write.load(Ordering::Relaxed) && !data.is_empty() {
            let iov = [IoSlice::new(data)];
            match rustix::io::pwritev2(&*fd, &iov, offset as u64, ReadWriteFlags::NOWAIT) {
                Ok(n) => done = n,
                Err(Errno::AGAIN) => {}
                Err(Errno::OPNOTSUPP) => self.nowait_write.store(false, Ordering::Relaxed),
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        if done < data.len() {
            // The rest goes to the pool, which needs its own copy of it.
            let rest = data[done..].to_vec();
            let start = offset as u64 + done as u64;
            let n = blocking(move || pwrite_all(&fd, &rest, start, done)).await?;
            done += n;
        }
        // `data` came in one frame, so it is shorter than 4 GiB.
        Ok(u32::try_from(done).unwrap_or(u32::MAX))
    }

    async fn fsync(&self) -> Result<()> {
        let fd = self.fd()?;
        blocking(move || Ok(rustix::fs::fsync(&*fd)?)).await
    }

    async fn clunk(&self) {
        // Closed here, or when the last in-flight call on the pool ends.
        self.fd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// A wire offset as a file offset: pread/pwrite take an `off_t`, and rustix
/// gives `u64::MAX` the meaning "the current position".
fn file_offset(offset: u64) -> Result<i64> {
    i64::try_from(offset).map_err(|_| Error::from(io::Error::from_raw_os_error(libc::EINVAL)))
}

/// Writes all of `data` at `offset`, stopping early only at an error after
/// some bytes went out (`already` is what the caller wrote before), which
/// is then reported as a short write rather than lost.
fn pwrite_all(fd: &OwnedFd, data: &[u8], offset: u64, already: usize) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::pwrite(fd, &data[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(_) if done + already > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// One `preadv2(RWF_NOWAIT)` into `buf`'s spare capacity, without zeroing
/// it first (a 1 MiB memset would cost as much as the copy). `EAGAIN` means
/// the data is not in the page cache.
fn pread_nowait(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    offset: i64,
) -> std::result::Result<(), Errno> {
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // SAFETY: `iov` describes `buf`'s spare capacity, valid for writes of
    // `iov_len` bytes and not otherwise accessed during the call; the
    // kernel only writes into it. `fd` is a live descriptor.
    let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    let Ok(n) = usize::try_from(n) else {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO));
    };
    // SAFETY: the kernel initialized the first `n` bytes of the spare
    // capacity, and `n <= iov_len <= capacity`.
    unsafe { buf.set_len(n.min(iov.iov_len)) };
    Ok(())
}
