//! Arbitrary frames offered to the TAP-side TCP coalescer: never a panic, every byte offered is
//! written exactly once (as a frame of its own or inside a coalesced super-frame), and written
//! frames carry a virtio header.
#![no_main]

use std::io::IoSlice;

use libfuzzer_sys::fuzz_target;
use vxswitch::sys::fastpath::gro::{Coalescer, Integrity};
use vxswitch::sys::fastpath::virtio::VNET_HDR_LEN;

fuzz_target!(|data: &[u8]| {
    // The input is a sequence of frames, each prefixed by a 2-byte length.
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let mut buf = vec![0u8; 64];
        buf.extend_from_slice(&tail[..len]);
        bufs.push(buf);
        rest = &tail[len..];
        if bufs.len() == 64 {
            break;
        }
    }
    let mut coalescer = Coalescer::new();
    let mut writes = 0usize;
    let mut write = |_port: usize, iov: &[IoSlice<'_>]| {
        assert!(iov.first().is_some_and(|h| h.len() == VNET_HDR_LEN), "a virtio header first");
        writes += 1;
    };
    let n = bufs.len();
    for i in 0..n {
        let range = 64..bufs[i].len();
        let integrity = if data.first().is_some_and(|b| b & 1 == 1) { Integrity::Authenticated } else { Integrity::Unverified };
        coalescer.offer(&mut bufs, i % 2, (i, range), integrity, &mut write);
    }
    coalescer.flush(&mut bufs, &mut write);
    assert!(writes <= n, "never more writes than frames");
    assert!(n == 0 || writes >= 1, "every frame is written");
});
