//! Any bytes as a `docker save` archive (legacy or OCI inside, gzip or not), imported into a
//! fresh tree (`registrish_gen::fuzzing::docker_save`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| registrish_gen::fuzzing::docker_save(data));
