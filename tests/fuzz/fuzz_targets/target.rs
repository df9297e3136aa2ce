//! libFuzzer entry point of the `target` target; the target itself is [`lexecon_fuzz::target`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::target(data));
