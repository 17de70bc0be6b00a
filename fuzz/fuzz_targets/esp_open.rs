//! Arbitrary bytes opened by an inbound SA: never a panic, never accepted without a valid ICV.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxswitch::ipsec::{InboundSa, Suite};

fuzz_target!(|data: &[u8]| {
    let mut sa = InboundSa::new(0x1001, Suite::Aes256Gcm, &[7u8; 36], true, 1024).unwrap();
    let mut packet = data.to_vec();
    assert!(sa.open(&mut packet).is_err(), "a random packet cannot carry a valid ICV");
});
