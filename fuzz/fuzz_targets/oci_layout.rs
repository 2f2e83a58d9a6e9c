//! An OCI image layout directory made of the regular files of a tar, imported into a fresh
//! tree (`registrish_gen::fuzzing::oci_layout`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| registrish_gen::fuzzing::oci_layout(data));
