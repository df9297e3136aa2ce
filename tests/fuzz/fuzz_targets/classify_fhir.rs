//! libFuzzer entry point of the `classify_fhir` target; the target itself is [`lexecon_fuzz::classify_fhir`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lexecon_fuzz::classify_fhir(data));
