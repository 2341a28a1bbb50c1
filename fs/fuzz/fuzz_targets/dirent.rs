//! `Dirent::decode_all` on an Rreaddir payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ninep_fuzz::check_dirents(data));
