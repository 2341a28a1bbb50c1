//! Replies as a client reads them: raw bytes into `decode` in each
//! dialect, and every accepted frame re-encoded to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ninep_fuzz::{check_message, Direction};

fuzz_target!(|data: &[u8]| check_message(data, Direction::R));
