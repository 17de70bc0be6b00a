//! The sans-IO switch core: FDB, forwarding decisions, tunnels and counters.
//!
//! Nothing here opens a socket or reads the clock; see [`switch`] for the driving contract.

pub mod counters;
pub mod esp;
pub mod fdb;
pub mod flood;
pub mod mtu;
pub mod pmtu;
pub mod router;
pub mod routes;
pub mod switch;
pub mod tunnel;

pub use counters::{Counters, DropCounts, DropReason};
pub use esp::{EspCounters, EspTunnels, TunnelError};
pub use fdb::{Fdb, FdbCounters, FdbEntry, FdbKey, Location};
pub use flood::{FloodLimit, FloodLimiter};
pub use mtu::{Encap, MtuPlan};
pub use pmtu::mss::MssClamp;
pub use router::{default_gateway_mac, RoutedSpec, RoutedSpec6, Router, UNLEASED};
pub use routes::RouteTable;
pub use switch::{Forward, NetworkSpec, PathSpec, PortId, Switch, SwitchConfig, Transmit};
pub use tunnel::Tunnel;
