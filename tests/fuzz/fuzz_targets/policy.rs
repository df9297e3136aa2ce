//! libFuzzer entry point of the `policy` target; the target itself is [`lexecon_fuzz::policy`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::policy(data));
