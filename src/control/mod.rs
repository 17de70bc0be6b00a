//! The control plane: everything that changes what the dataplane knows arrives as a
//! [`ControlUpdate`] value. Static configuration, gossip membership and (later) other sources
//! all produce the same values; the dataplane, the host-subnet route driver and the kernel
//! offload driver consume them. Control and dataplane never share references.

mod update;
pub use update::{ControlUpdate, PeerInfo};
