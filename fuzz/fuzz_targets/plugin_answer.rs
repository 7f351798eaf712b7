//! What a plugin answers: `[u16 len][describe][u16 len][answer][request]`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connvault::fuzzing::check_plugin_answer(data));
