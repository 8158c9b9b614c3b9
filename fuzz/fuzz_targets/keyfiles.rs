#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcvault_fuzz::keyfiles::check(data));
