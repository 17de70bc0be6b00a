//! Drivers: the only place with file descriptors, syscalls, clocks, threads and `unsafe`.

pub mod control_socket;
pub mod daemon;
pub mod datapath;
pub mod esp_driver;
pub mod gossip;
pub mod gro;
pub mod gso;
pub mod hostsubnet;
pub mod hostsubnet_driver;
pub mod links;
pub mod metrics;
pub mod netlink;
pub mod netns;
pub mod offload;
pub mod probe;
pub mod signals;
pub mod status;
pub mod tap;
pub mod udp;
pub mod virtio;

use std::io;
use std::net::SocketAddrV4;

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
        addr: SocketAddrV4,
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
