#![no_main]
//! See `iamra_bootstrap::fuzzing::private_key`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| iamra_bootstrap::fuzzing::private_key(data));
