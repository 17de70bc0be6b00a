//! Programs the service VIPs on this host ([`super::nft_services`]) and flushes the conntrack
//! entries of every backend that stops being live (`conntrack -D -p PROTO -d VIP --dport PORT
//! -r BACKEND`), so established flows, UDP ones included, do not keep going to a container that
//! is gone. Reconciled on start (the table an earlier run left is deleted) and removed on a clean
//! stop.
//!
//! The daemon drives it through [`ServicesDriver`], which runs it on its own thread
//! ([`super::offthread`]): `nft` and `conntrack` take milliseconds, the data path must not wait.

use std::io;

use super::conntrack::Conntrack;
use super::nft_services;
use super::offthread::{Offthread, Programmer};
use crate::control::{withdrawn, ServiceView};

/// Counters of the service programmer.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServicesIo {
    /// Backends withdrawn (their conntrack entries flushed).
    pub withdrawn: u64,
    /// Failed nft or conntrack operations.
    pub errors: u64,
}

/// The service programmer (runs on its own thread: see [`ServicesDriver`]).
#[derive(Debug, Default)]
pub struct ServicesProgrammer {
    programmed: Vec<ServiceView>,
    conntrack: Conntrack,
    /// Counters.
    pub io: ServicesIo,
}

/// The daemon's handle on the service programmer's thread.
pub type ServicesDriver = Offthread<ServicesProgrammer>;

impl Offthread<ServicesProgrammer> {
    /// Delete whatever table an earlier run left (before this returns) and run the programmer on
    /// its own thread with nothing programmed.
    pub fn start() -> io::Result<ServicesDriver> {
        Offthread::spawn("vxs-services", ServicesProgrammer::start())
    }

    /// Counters, as of the last change carried out.
    pub fn io(&self) -> ServicesIo {
        self.view()
    }
}

impl Programmer for ServicesProgrammer {
    type Action = Vec<ServiceView>;
    type View = ServicesIo;

    fn apply(&mut self, services: Vec<ServiceView>) {
        ServicesProgrammer::apply(self, services);
    }

    fn view(&self) -> ServicesIo {
        self.io
    }

    fn shutdown(self) {
        ServicesProgrammer::shutdown(self);
    }
}

impl ServicesProgrammer {
    /// Deletes whatever table an earlier run left; nothing programmed.
    pub fn start() -> ServicesProgrammer {
        let mut d = ServicesProgrammer::default();
        match nft_services::apply(&[]) {
            Ok(()) | Err(nftables::helper::NftablesError::NftExecution { .. }) => {}
            Err(e) => {
                d.io.errors += 1;
                tracing::warn!("deleting table ip {}: {e}", nft_services::TABLE);
            }
        }
        d
    }

    /// What is programmed.
    pub fn programmed(&self) -> &[ServiceView] {
        &self.programmed
    }

    /// Program `services` (the node's current view), flushing withdrawn backends.
    pub fn apply(&mut self, services: Vec<ServiceView>) {
        if services == self.programmed {
            return;
        }
        // The rules first (no new flow goes to a withdrawn backend), then the flows it had.
        if let Err(e) = nft_services::apply(&services) {
            self.io.errors += 1;
            tracing::error!("programming table ip {}: {e}", nft_services::TABLE);
        }
        for (key, backend) in withdrawn(&self.programmed, &services) {
            tracing::info!(service = %key, %backend, "backend withdrawn");
            self.io.withdrawn += 1;
            let (proto, vip, port, b) = (key.proto.to_string(), key.vip.to_string(), key.port.to_string(), backend.to_string());
            if let Err(e) = self.conntrack.delete(&["-p", &proto, "-d", &vip, "--dport", &port, "-r", &b]) {
                self.io.errors += 1;
                tracing::warn!("conntrack entries of {key} -> {backend} not flushed: conntrack: {e}");
            }
        }
        self.programmed = services;
    }

    /// Clean stop: delete the table.
    pub fn shutdown(mut self) {
        if let Err(e) = nft_services::apply(&[]) {
            tracing::warn!("deleting table ip {}: {e}", nft_services::TABLE);
        }
        self.conntrack.reap(true);
    }
}
