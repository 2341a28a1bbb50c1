//! Numeric user and group ids to names, through the password and group
//! databases (NSS), for 9P2000's string uid/gid fields.

use std::ffi::{c_char, c_int, CStr};

/// Largest buffer offered to getpwuid_r/getgrgid_r; they ask for more with
/// `ERANGE`.
const MAX_NSS_BUF: usize = 1 << 20;

/// The password file's name for `uid`, if it has one. May block on NSS.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid_r has exactly the shape `lookup` requires.
    unsafe { lookup(uid, libc::getpwuid_r, |p: &libc::passwd| p.pw_name) }
}

/// The group file's name for `gid`, if it has one. May block on NSS.
pub fn group_name(gid: u32) -> Option<String> {
    // SAFETY: getgrgid_r has exactly the shape `lookup` requires.
    unsafe { lookup(gid, libc::getgrgid_r, |g: &libc::group| g.gr_name) }
}

type Reentrant<T> = unsafe extern "C" fn(u32, *mut T, *mut c_char, usize, *mut *mut T) -> c_int;

/// Calls a `get*id_r` function, growing its buffer on `ERANGE`.
///
/// # Safety
///
/// `get` must behave as getpwuid_r/getgrgid_r do: fill the record and the
/// buffer it is given, and set the result pointer to the record or null;
/// `name` must return a pointer into that buffer or null.
unsafe fn lookup<T>(id: u32, get: Reentrant<T>, name: fn(&T) -> *const c_char) -> Option<String> {
    let mut buf = vec![0 as c_char; 1024];
    loop {
        let mut rec = std::mem::MaybeUninit::<T>::uninit();
        let mut result: *mut T = std::ptr::null_mut();
        // SAFETY: `rec` and `buf` are valid for writes of their sizes and
        // outlive the call; `result` is a valid out-pointer.
        let rc = unsafe {
            get(
                id,
                rec.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success `result` points to the initialized record,
        // whose name is null or a NUL-terminated string inside the live `buf`.
        let name = name(unsafe { &*result });
        if name.is_null() {
            return None;
        }
        // SAFETY: as above, a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(name) };
        return name
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name_and_an_unused_id_does_not() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(4_000_000_000), None);
    }
}
