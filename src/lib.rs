//! vxswitch: a userspace overlay switch for container and VM hosts.
//!
//! Layers, imports pointing downwards only:
//! - [`wire`]: zero-copy packet views (Ethernet, ARP, IPv4, UDP, VXLAN, ESP).
//! - [`counters`]: the one way counter sets are declared, enumerated and exported.
//! - [`vxlan`], [`arp`], [`ipsec`]: protocol logic over caller-owned buffers; [`replay`] the one
//!   anti-replay window (ESP and gossip), [`keyfile`] the one loader for secret files.
//! - [`dataplane`]: the sans-IO switch core (FDB, routing, forwarding decisions, counters).
//! - [`control`]: the sans-IO control plane producing [`control::ControlUpdate`] values.
//! - [`node`]: one host, sans-IO: the switch, gossip membership and the fan-out of updates.
//! - [`sys`]: the only place with file descriptors, syscalls, clocks and threads.
//! - [`sim`]: many whole nodes in one process on one virtual network and clock, for tests and benches.
//! - `testnet`, `bench`: network-namespace labs for the demo, tests and benchmark (cargo feature
//!   `lab`, on by default; the daemon does not need them: `--no-default-features` leaves them out).

#![deny(unsafe_code)]

pub mod arp;
#[cfg(feature = "lab")]
pub mod bench;
pub mod cni;
pub mod config;
pub mod control;
pub mod counters;
pub mod dataplane;
pub mod ipsec;
pub mod keyfile;
pub mod nd;
pub mod node;
pub mod proxy_table;
pub mod replay;
pub mod sim;
pub mod sys;
#[cfg(test)]
mod test_support;
#[cfg(feature = "lab")]
pub mod testnet;
pub mod vxlan;
pub mod wire;
