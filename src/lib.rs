//! vxswitch: a userspace overlay switch for container and VM hosts.
//!
//! Layers, imports pointing downwards only:
//! - [`wire`]: zero-copy packet views (Ethernet, ARP, IPv4, UDP, VXLAN, ESP).
//! - [`vxlan`], [`arp`], [`ipsec`]: protocol logic over caller-owned buffers.
//! - [`dataplane`]: the sans-IO switch core (FDB, routing, forwarding decisions, counters).
//! - [`control`]: the sans-IO control plane producing [`control::ControlUpdate`] values.
//! - [`node`]: one host, sans-IO: the switch, gossip membership and the fan-out of updates.
//! - [`sys`]: the only place with file descriptors, syscalls, clocks and threads.
//! - [`sim`]: many whole nodes in one process on one virtual network and clock, for tests and benches.
//! - [`testnet`], [`bench`]: network-namespace topologies for the demo, tests and benchmark.

pub mod arp;
pub mod bench;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod ipsec;
pub mod node;
pub mod sim;
pub mod sys;
pub mod testnet;
pub mod vxlan;
pub mod wire;
