//! Names, tags and digests: the matcher, the constructors and the regex spellings agree on any
//! string, and what parses spells itself back (`registrish_gen::fuzzing::grammar`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use registrish_gen::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        fuzzing::grammar(s);
    }
    if let (Some(a), Some(b)) = (data.get(..32), data.get(32..64)) {
        fuzzing::digests(a.try_into().unwrap(), b.try_into().unwrap());
    }
});
