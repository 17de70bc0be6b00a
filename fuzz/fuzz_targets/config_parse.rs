//! Arbitrary configuration text: rejected with an error or accepted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vxswitch::config::Config::parse(text);
    }
});
