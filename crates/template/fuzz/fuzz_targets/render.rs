//! Fuzz target: renders arbitrary templates with arbitrary values and options and checks the
//! engine's promises (see `pitcrew_template::fuzz_check`, which holds the body so that a
//! stable test runs the same checks).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pitcrew_template::fuzz_check(data));
