//! libFuzzer entry point of the `differential` target; the target itself is [`lexecon_fuzz::differential`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::differential(data));
