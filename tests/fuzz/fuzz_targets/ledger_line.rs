//! libFuzzer entry point of the `ledger_line` target; the target itself is [`lexecon_fuzz::ledger_line`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::ledger_line(data));
