//! TCP segment headers (RFC 9293), as far as a switch needs them.
//!
//! Layout: source port, destination port, sequence number, acknowledgment number, data offset
//! (4 bits, in 32-bit words) with 4 reserved/ECN-nonce bits, the 8 flag bits (CWR ECE URG ACK
//! PSH RST SYN FIN), window, checksum, urgent pointer, then options up to the data offset and the
//! payload. TCP has no length field: the segment ends where the IP payload ends, so a view must
//! be given exactly the IP payload.
//!
//! vxswitch never terminates TCP. It reads and patches headers on the TAP offload paths: splitting
//! a TSO super-frame (sequence numbers, FIN/PSH/CWR per segment, a full checksum) and coalescing
//! consecutive segments into one (window, PSH, a pseudo-header seed for the kernel to finish),
//! and it hashes the ports for the outer source port. The checksum covers a pseudo-header (IPv4
//! or IPv6 addresses, protocol 6, segment length), the header and the payload.

use super::{checksum, ipv4::protocol, read_u16, write_u16, Error, Result};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field in the header (the virtio `csum_offset` for TCP).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// The TCP flag bits (the byte at offset 13).
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push the data to the application.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment number is valid.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is valid.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// A read/write view of a TCP segment (header, options and payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer, checking 20 <= data offset * 4 <= buffer length.
    // hot path
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks of [`Self::new_checked`].
    pub fn check(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if self.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number (meaningful with [`flags::ACK`]).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes, options included (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The four bits between the data offset and the flags (three reserved, one historic ECN
    /// nonce); zero in ordinary segments.
    #[inline]
    pub fn reserved_bits(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] & 0x0f
    }

    /// The flag bits (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Receive window (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Stored checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes (between the fixed header and the data offset).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The whole segment.
    #[inline]
    pub fn segment(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// True when the checksum is right for these IPv4 addresses.
    // hot path
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::verify(checksum::combine(&[self.pseudo_v4(src, dst), checksum::data(self.segment())]))
    }

    /// True when the checksum is right for these IPv6 addresses.
    // hot path
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify(checksum::combine(&[self.pseudo_v6(src, dst), checksum::data(self.segment())]))
    }

    /// The pseudo-header partial sum over IPv4 for this segment's length: the value a sender
    /// that leaves the checksum to offload (CHECKSUM_PARTIAL) stores in the field.
    pub fn pseudo_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        checksum::pseudo_header_v4(src, dst, protocol::TCP, self.segment().len() as u32)
    }

    /// The pseudo-header partial sum over IPv6 for this segment's length.
    pub fn pseudo_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        checksum::pseudo_header_v6(src, dst, protocol::TCP, self.segment().len() as u32)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ_NUM..field::SEQ_NUM + 4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        self.buffer.as_mut()[field::ACK_NUM..field::ACK_NUM + 4].copy_from_slice(&ack.to_be_bytes());
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60); clears the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }

    /// Sets the flag bits.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the receive window.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Computes and stores the checksum over the IPv4 pseudo-header and the whole segment.
    // hot path
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let pseudo = self.pseudo_v4(src, dst);
        self.fill_checksum_from(pseudo);
    }

    /// Computes and stores the checksum over the IPv6 pseudo-header and the whole segment.
    // hot path
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let pseudo = self.pseudo_v6(src, dst);
        self.fill_checksum_from(pseudo);
    }

    /// Finishes a checksum left partial: the field holds the pseudo-header sum (as a sender
    /// using checksum offload leaves it), so summing the segment over it gives the final value.
    // hot path
    pub fn finish_partial_checksum(&mut self) {
        let c = !checksum::data(self.segment());
        self.set_checksum(c);
    }

    fn fill_checksum_from(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = !checksum::combine(&[pseudo, checksum::data(self.segment())]);
        self.set_checksum(c);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[inline]
fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// The parsed fixed TCP header. Options stay in the buffer (`header_len` counts them), the
/// checksum is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Header length, options included.
    pub header_len: usize,
    /// The flag bits (see [`flags`]).
    pub flags: u8,
    /// Receive window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
}

impl TcpRepr {
    /// Parses a segment. The checksum is not verified here: call
    /// [`TcpPacket::verify_checksum_v4`] or `_v6` when the addresses are known.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&T>) -> Result<Self> {
        packet.check()?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            header_len: packet.header_len(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
        })
    }

    /// Header bytes this repr describes (options included).
    pub const fn buffer_len(&self) -> usize {
        self.header_len
    }

    /// Writes the fixed 20-byte header with checksum 0; the option bytes up to `header_len` are
    /// the caller's. Fill the checksum once options and payload are in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(self.header_len);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;
    use proptest::prelude::*;

    // A real exchange between two network namespaces joined by a veth pair (192.0.2.1 in A,
    // 192.0.2.2 in B): in B `tcpdump -n -xx -i vethB tcp` while a Python client in A connected
    // to port 5299 in B and sent `vxswitch`. These are the TCP segments (Ethernet and IPv4
    // headers stripped) of A's SYN and of its data segment. veth leaves checksums to offload,
    // so the checksum fields hold the pseudo-header seed (0x8432 for a 40-byte segment).
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const SYN: &str = "cb6e 14b3 21b7 74f2 0000 0000 a002 faf0 8432 0000 0204 05b4 0402 080a 7542 0df1
        0000 0000 0103 030a";
    const DATA: &str = "cb6e 14b3 21b7 74f3 5293 7237 8018 003f 8432 0000 0101 080a 7542 0df1 456d d608
        7678 7377 6974 6368";

    /// Parse, emit over a zeroed fixed header, put the seed back and compare byte for byte.
    fn roundtrip(bytes: &[u8]) -> TcpRepr {
        let p = TcpPacket::new_checked(bytes).unwrap();
        let repr = TcpRepr::parse(&p).unwrap();
        assert_eq!(repr.buffer_len(), p.header_len());
        let mut out = bytes.to_vec();
        out[..HEADER_LEN].fill(0);
        let mut q = TcpPacket::new_unchecked(&mut out[..]);
        repr.emit(&mut q);
        q.set_checksum(p.checksum());
        assert_eq!(out, bytes);
        repr
    }

    #[test]
    fn captured_syn_with_options() {
        let bytes = hex(SYN);
        let repr = roundtrip(&bytes);
        assert_eq!((repr.src_port, repr.dst_port), (52078, 5299));
        assert_eq!((repr.seq_number, repr.ack_number), (565_671_154, 0));
        assert_eq!((repr.flags, repr.window_len, repr.header_len), (flags::SYN, 64240, 40));
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.options(), &bytes[20..40]);
        assert_eq!(&p.options()[..4], &[2, 4, 0x05, 0xb4], "MSS 1460 first");
        assert!(p.payload().is_empty());
        assert_eq!(p.reserved_bits(), 0);
    }

    #[test]
    fn captured_data_segment() {
        let bytes = hex(DATA);
        let repr = roundtrip(&bytes);
        assert_eq!(repr.flags, flags::PSH | flags::ACK);
        assert_eq!((repr.seq_number, repr.ack_number, repr.window_len), (565_671_155, 1_385_394_743, 63));
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.payload(), b"vxswitch");
    }

    #[test]
    fn offload_seed_then_full_checksum_matches_etherparse() {
        for dump in [SYN, DATA] {
            let mut bytes = hex(dump);
            let p = TcpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(p.checksum(), p.pseudo_v4(SRC, DST), "veth left the seed");
            assert!(!p.verify_checksum_v4(SRC, DST));
            let mut finished = bytes.clone();
            TcpPacket::new_unchecked(&mut finished[..]).finish_partial_checksum();
            let mut q = TcpPacket::new_unchecked(&mut bytes[..]);
            q.fill_checksum_v4(SRC, DST);
            assert!(q.verify_checksum_v4(SRC, DST));
            assert!(!q.verify_checksum_v4(SRC, Ipv4Addr::new(192, 0, 2, 3)));
            assert_eq!(finished, bytes, "finishing the seed equals computing in full");
            let (h, payload) = etherparse::TcpHeader::from_slice(&bytes).unwrap();
            assert_eq!(h.checksum, h.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload).unwrap());
        }
    }

    #[test]
    fn ipv6_checksum_matches_etherparse() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let mut bytes = hex(DATA);
        let mut q = TcpPacket::new_unchecked(&mut bytes[..]);
        q.fill_checksum_v6(&src, &dst);
        assert!(q.verify_checksum_v6(&src, &dst));
        let (h, payload) = etherparse::TcpHeader::from_slice(&bytes).unwrap();
        assert_eq!(h.checksum, h.calc_checksum_ipv6_raw(src.octets(), dst.octets(), payload).unwrap());
    }

    #[test]
    fn setters_patch_in_place() {
        let mut bytes = hex(DATA);
        let mut q = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        q.set_seq_number(u32::MAX);
        q.set_flags(q.flags() & !flags::PSH);
        q.set_window_len(0x1234);
        q.payload_mut().copy_from_slice(b"VXSWITCH");
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.seq_number(), p.flags(), p.window_len()), (u32::MAX, flags::ACK, 0x1234));
        assert_eq!((p.ack_number(), p.header_len(), p.payload()), (1_385_394_743, 32, &b"VXSWITCH"[..]));
    }

    #[test]
    fn truncated_and_malformed() {
        let bytes = hex(SYN);
        for len in 0..40 {
            assert_eq!(TcpPacket::new_checked(&bytes[..len]).err(), Some(Error::Truncated), "{len}");
        }
        let mut short = bytes.clone();
        short[12] = 0x40; // data offset 4 words
        assert_eq!(TcpPacket::new_checked(&short[..]).err(), Some(Error::Malformed));
        let mut long = bytes.clone();
        long[12] = 0xf0; // 60 bytes of header in a 40-byte segment
        assert_eq!(TcpPacket::new_checked(&long[..]).err(), Some(Error::Truncated));
    }

    proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            match TcpPacket::new_checked(&bytes[..]) {
                Ok(p) => {
                    let repr = TcpRepr::parse(&p).unwrap();
                    prop_assert_eq!(repr.buffer_len() + p.payload().len(), bytes.len());
                    prop_assert_eq!(p.options().len() + HEADER_LEN, p.header_len());
                    let _ = (p.verify_checksum_v4(SRC, DST), p.reserved_bits(), p.urgent_at());
                }
                Err(_) => prop_assert!(TcpRepr::parse(&TcpPacket::new_unchecked(&bytes[..])).is_err()),
            }
        }

        #[test]
        fn captured_segments_cut_anywhere_never_panic(cut in 0usize..41, at in 0usize..40, value in any::<u8>()) {
            let mut bytes = hex(DATA);
            bytes[at] = value;
            bytes.truncate(cut);
            if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
                prop_assert!(p.header_len() <= bytes.len());
                let _ = (p.payload(), p.options(), p.verify_checksum_v4(SRC, DST));
            }
        }
    }
}
