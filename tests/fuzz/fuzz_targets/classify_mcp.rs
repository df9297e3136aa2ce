//! libFuzzer entry point of the `classify_mcp` target; the target itself is [`lexecon_fuzz::classify_mcp`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::classify_mcp(data));
