//! Any bytes as a manifest: parsing and classification, and the scan of a repository holding
//! them as a tag (`registrish_gen::fuzzing::manifest`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| registrish_gen::fuzzing::manifest(data));
