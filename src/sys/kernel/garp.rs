//! Gratuitous ARP on an uplink: after taking a floating IP, tell the link's neighbours (routers,
//! clients on the same segment) that the address now lives at this host's MAC, instead of waiting
//! for their caches to expire. Linux sends none when an IPv4 address is added.
//!
//! Sent from an `AF_PACKET` socket bound to the link; the bound socket reports the link's MAC
//! (`getsockname`), so nothing else has to be looked up.

#![allow(unsafe_code)] // raw syscalls the safe crates do not wrap; each block has a SAFETY note

use std::io;
use std::net::Ipv4Addr;

use crate::arp::arp_frame;
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::EthernetAddress;

/// Sends a gratuitous ARP (a request for `ip` from `ip`, broadcast) on the link `index`, from the
/// link's own MAC.
pub fn send_garp(index: u32, ip: Ipv4Addr) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned right after.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: sll is a valid sockaddr_ll of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // A bound packet socket reports the link's hardware address.
    let mut got = len;
    // SAFETY: sll has room for `got` bytes.
    if unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut sll).cast(), &mut got) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if sll.sll_halen != 6 {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "not an Ethernet link"));
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&sll.sll_addr[..6]);
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let frame = arp_frame(&repr, EthernetAddress::BROADCAST, None);
    sll.sll_halen = 6;
    sll.sll_addr = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
    // SAFETY: frame and sll are valid for the given lengths.
    let sent = unsafe { libc::sendto(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0, (&raw const sll).cast(), len) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
