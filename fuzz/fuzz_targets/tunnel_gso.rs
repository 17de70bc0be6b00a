//! A VXLAN datagram longer than the underlay carries, arbitrary bytes: planning its cut as a
//! kernel vxlan super-datagram never panics, and when a plan is made every piece fits the size it
//! announced and keeps the VXLAN header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxswitch::sys::fastpath::tunnel_gso;

fuzz_target!(|data: &[u8]| {
    let Some((&max, datagram)) = data.split_first() else { return };
    let max_frame = 64 + usize::from(max) * 8;
    if let Ok(plan) = tunnel_gso::plan(datagram, max_frame) {
        let mut out = vec![0u8; plan.piece_len(0)];
        for i in 0..plan.split.count().min(4096) {
            let len = plan.write_piece(datagram, i, &mut out);
            assert_eq!(len, plan.piece_len(i));
            assert!(len <= 8 + max_frame);
            assert_eq!(out[..8], datagram[..8]);
        }
    }
});
