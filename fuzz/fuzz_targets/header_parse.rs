#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcvault_fuzz::header_parse::check(data));
