#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcvault_fuzz::escrow_packet::check(data));
