#![no_main]
//! See `iamra_bootstrap::fuzzing::serve_request`: the bytes are an HTTP/1.1 request head.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| iamra_bootstrap::fuzzing::serve_request(data));
