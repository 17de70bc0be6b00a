//! A blocking netlink (rtnetlink) driver: links, addresses, bridges, VXLAN devices, FDB,
//! neighbours and routes.
//!
//! vxswitch programs the kernel in two modes that both consume the control plane's
//! [`ControlUpdate`](crate::control::ControlUpdate) stream:
//! - *kernel offload*: a kernel VXLAN device (`vtep1042`) with `nolearning`, one all-zero FDB
//!   entry per peer for flooding, unicast FDB and neighbour entries learned from gossip;
//! - *host-subnet* (flannel host-gw style): plain routes `PEER_SUBNET via PEER_IP`.
//!
//! The `rtnetlink` crate is asynchronous, while the rest of vxswitch is one synchronous epoll
//! loop. [`Netlink`] therefore owns a private current-thread tokio runtime and `block_on`s each
//! request: a request is a few syscalls, it is rare (control-plane rate, never per packet) and a
//! blocking call keeps the caller simple. The connection task lives on that runtime and is
//! driven whenever a request is.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it, for its
//! whole life. [`Netlink::new`] called inside [`crate::testnet::setns::run_in`] hence gives a
//! handle into another namespace that is usable from any thread afterwards.
//!
//! Every operation names the iproute2 command it equals (`// = ip ...`), so a reader can
//! reproduce each step by hand.

mod addr;
mod error;
mod fdb;
mod link;
mod netns;
mod route;

use std::future::Future;

use rtnetlink::Handle;
use tokio::runtime::Runtime;

pub use error::NetlinkError;
pub use link::{LinkInfo, VxlanSpec};
pub use route::{Ipv4Route, Ipv6Route, Route, RouteFamily, RouteLookup, RT_TABLE_MAIN};

/// Result of every netlink operation.
pub type Result<T> = std::result::Result<T, NetlinkError>;

/// A blocking rtnetlink connection bound to the network namespace it was opened in.
pub struct Netlink {
    rt: Runtime,
    handle: Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| NetlinkError::Io { op: "create runtime".into(), source })?;
        // The socket registers with the runtime's reactor, so create it inside the runtime.
        let _guard = rt.enter();
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Io { op: "open netlink socket".into(), source })?;
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// Runs one request to completion on the private runtime.
    fn run<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }
}
