//! Drivers: the only place with file descriptors, syscalls, clocks, threads and `unsafe`.
//!
//! Split by job: [`fastpath`] moves packets (TAP, UDP, offloads), [`kernel`] programs kernel state
//! over netlink (links, the kernel vxlan device, host-subnet routes), [`daemon`] is the event loop
//! that wires both to the sans-IO core and serves the control socket and metrics. `fastpath` and
//! `kernel` never import each other.

pub mod cni;
pub mod daemon;
pub mod fastpath;
pub mod kernel;

use std::io;
use std::net::SocketAddr;

/// A failed system operation, naming what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// A socket operation failed.
    #[error("{what} {addr}: {op} failed: {source}")]
    Socket {
        /// The syscall or option.
        op: &'static str,
        /// Which socket.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A TAP operation failed.
    #[error("TAP {name}: {op} failed: {source}")]
    Tap {
        /// The operation.
        op: &'static str,
        /// The device name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Configuring a link (bridge, address, MTU) failed.
    #[error("link {name}: {op} failed: {source}")]
    Link {
        /// The operation.
        op: &'static str,
        /// The link name.
        name: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another OS operation failed.
    #[error("{op} failed: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
