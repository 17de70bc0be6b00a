//! Kernel state that vxswitch programs over netlink: links (TAP set-up, bridges, addresses), the
//! kernel vxlan device of `mode = "kernel"` ([`vtep`]), and the host-subnet routes
//! ([`host_routes`], driven by [`host_subnet`]). Plans are computed from the configuration and
//! `ControlUpdate`s, then executed; nothing here touches packets (that is `sys::fastpath`).

pub mod conntrack;
pub mod floating;
mod garp;
pub mod host_lease;
pub mod host_routes;
pub mod host_state;
pub mod host_subnet;
pub mod links;
pub mod netlink;
pub mod nft;
mod nft_build;
pub mod nft_services;
pub mod offthread;
pub mod services;
pub mod vtep;
