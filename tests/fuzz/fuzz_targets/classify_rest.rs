//! libFuzzer entry point of the `classify_rest` target; the target itself is [`lexecon_fuzz::classify_rest`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::classify_rest(data));
