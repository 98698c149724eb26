#![no_main]
//! See `iamra_bootstrap::fuzzing::certificates`; the key is the known-answer test's.
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = include_bytes!("../../tests/data/kat/cert-key.pem");

fuzz_target!(|data: &[u8]| iamra_bootstrap::fuzzing::certificates(data, KEY));
