//! `Stat::decode_entry`, `Stat::decode_dir` and the Rstat form of a stat.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ninep_fuzz::check_stat(data));
