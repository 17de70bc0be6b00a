//! Programs the host for the floating IPs this host holds: the address on its uplink, a
//! gratuitous ARP when it is taken, NAT in vxswitch's own nftables table ([`super::nft`]), and on
//! release the address removed and the conntrack entries of the address flushed.
//!
//! Order matters for "never two hosts answer": on release the address goes first (the kernel
//! stops answering ARP for it at once), then the rules, then conntrack; on hold the rules go
//! first, then the address, then the gratuitous ARPs that move the neighbours' caches.
//!
//! Conntrack entries are flushed with the `conntrack` tool (`conntrack -D -d F` for inbound flows
//! DNATed from the address, `conntrack -D -q F` for outbound flows SNATed to it; see
//! [`super::conntrack`] for why the tool); a missing tool is logged and counted
//! (`floating.errors`), the address still moves.
//!
//! Reconciled on start: the rules left in the table name the addresses an earlier run held
//! (rule comments `fip ADDRESS UPLINK`); those addresses are removed from their uplinks, their
//! conntrack entries flushed and the table deleted, before anything is claimed. A clean stop
//! releases everything the same way, so nothing is left (`nft list tables`, `ip addr`).
//!
//! Unlike the service programmer, this one runs inline in the daemon's loop, before the loop
//! sends gossip: a release announced in the record must already be done in the kernel, so that
//! the next owner never takes the address while this host still answers for it. That costs the
//! data path a few milliseconds (one `nft` run) per hand-over, a rare event.

use std::io;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::conntrack::Conntrack;
use super::garp::send_garp;
use super::netlink::Netlink;
use super::nft;
use crate::control::{FloatingAction, FloatingSpec};

/// Gratuitous ARPs sent when an address is taken.
const GARPS: usize = 2;

/// Counters of the floating-IP programmer.
#[derive(Debug, Default, Clone, Copy)]
pub struct FloatingIo {
    /// Failed nft, address, ARP or conntrack operations.
    pub errors: u64,
    /// Gratuitous ARPs sent.
    pub garps: u64,
    /// Conntrack flushes started.
    pub conntrack_flushes: u64,
}

/// The floating-IP programmer of the daemon.
#[derive(Debug)]
pub struct FloatingDriver {
    nl: Netlink,
    held: Vec<FloatingSpec>,
    conntrack: Conntrack,
    /// Counters.
    pub io: FloatingIo,
}

impl FloatingDriver {
    /// Undo what an earlier run left (see the module doc) and start with nothing held.
    pub fn start() -> io::Result<FloatingDriver> {
        let nl = Netlink::new().map_err(io::Error::other)?;
        let mut d = FloatingDriver { nl, held: Vec::new(), conntrack: Conntrack::default(), io: FloatingIo::default() };
        d.reconcile();
        Ok(d)
    }

    fn reconcile(&mut self) {
        let left = match nft::held_now() {
            Ok(left) => left,
            // No nft on this host: nothing of ours can be there.
            Err(nftables::helper::NftablesError::NftExecution { .. }) => return,
            Err(e) => {
                tracing::warn!("reading table ip {}: {e}", nft::TABLE);
                Vec::new()
            }
        };
        for (ip, dev) in &left {
            tracing::info!(%ip, %dev, "removing a floating IP an earlier run left");
            self.remove_address(*ip, dev);
            self.flush_conntrack(*ip);
        }
        if let Err(e) = nft::apply(&[]) {
            self.io.errors += 1;
            tracing::warn!("deleting table ip {}: {e}", nft::TABLE);
        }
        self.conntrack.reap(true);
    }

    /// Carry out one decision of the node.
    pub fn apply(&mut self, action: FloatingAction) {
        match action {
            FloatingAction::Hold(spec) => self.hold(spec),
            FloatingAction::Release(spec) => self.release(&spec),
        }
    }

    /// The floating IPs programmed here.
    pub fn held(&self) -> &[FloatingSpec] {
        &self.held
    }

    fn hold(&mut self, spec: FloatingSpec) {
        if self.held.iter().any(|h| h.ip == spec.ip) {
            return;
        }
        tracing::info!(ip = %spec.ip, dev = %spec.interface, container = %spec.target, "taking floating IP");
        self.held.push(spec.clone());
        self.program_rules();
        let index = match self.nl.link_index(&spec.interface) {
            Ok(i) => i,
            Err(e) => {
                self.io.errors += 1;
                tracing::error!(dev = %spec.interface, "floating IP {}: no uplink: {e}", spec.ip);
                return;
            }
        };
        match self.nl.add_address(index, Ipv4Net::from(spec.ip)) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => {
                self.io.errors += 1;
                tracing::error!("floating IP {}: {e}", spec.ip);
            }
        }
        for _ in 0..GARPS {
            match send_garp(index, spec.ip) {
                Ok(()) => self.io.garps += 1,
                Err(e) => {
                    self.io.errors += 1;
                    tracing::warn!(dev = %spec.interface, "gratuitous ARP for {}: {e}", spec.ip);
                }
            }
        }
    }

    fn release(&mut self, spec: &FloatingSpec) {
        let Some(pos) = self.held.iter().position(|h| h.ip == spec.ip) else { return };
        let spec = self.held.remove(pos);
        tracing::info!(ip = %spec.ip, dev = %spec.interface, "releasing floating IP");
        self.remove_address(spec.ip, &spec.interface);
        self.program_rules();
        self.flush_conntrack(spec.ip);
    }

    fn program_rules(&mut self) {
        if let Err(e) = nft::apply(&self.held) {
            self.io.errors += 1;
            tracing::error!("programming table ip {}: {e}", nft::TABLE);
        }
    }

    fn remove_address(&mut self, ip: Ipv4Addr, dev: &str) {
        let index = match self.nl.link_index(dev) {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                self.io.errors += 1;
                tracing::warn!(%dev, "floating IP {ip}: {e}");
                return;
            }
        };
        if let Err(e) = self.nl.delete_address(index, Ipv4Net::from(ip)) {
            self.io.errors += 1;
            tracing::error!(%dev, "removing floating IP {ip}: {e}");
        }
    }

    fn flush_conntrack(&mut self, ip: Ipv4Addr) {
        let ip = ip.to_string();
        // = conntrack -D -d IP ; conntrack -D -q IP
        for dir in ["-d", "-q"] {
            match self.conntrack.delete(&[dir, &ip]) {
                Ok(()) => self.io.conntrack_flushes += 1,
                Err(e) => {
                    self.io.errors += 1;
                    tracing::warn!("conntrack entries of {ip} not flushed: conntrack: {e}");
                }
            }
        }
    }

    /// Clean stop: release every address (address, rules, conntrack) and delete the table.
    pub fn shutdown(mut self) {
        for spec in self.held.clone() {
            self.release(&spec);
        }
        if let Err(e) = nft::apply(&[]) {
            tracing::warn!("deleting table ip {}: {e}", nft::TABLE);
        }
        self.conntrack.reap(true);
    }
}
