#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcvault_fuzz::server_config::check(data));
