//! The control plane: everything that changes what the dataplane knows arrives as a
//! [`ControlUpdate`] value. Static configuration, gossip membership and (later) other sources
//! all produce the same values; the dataplane, the host-subnet route driver and the kernel
//! offload driver consume them. Control and dataplane never share references.
//!
//! # Gossip membership
//!
//! Hosts find each other through a seed list, detect failures, and spread one
//! [`MemberRecord`] each: name, underlay address (IPv4 or IPv6), VTEP MAC, owned subnets and container IP→MAC
//! bindings per VNI, ESP X25519 public key and start epoch, and the modes the host runs.
//! [`Membership`] is sans-IO like the rest of vxswitch: the driver feeds datagrams and timeouts
//! in and drains sealed datagrams, a next deadline and [`ControlUpdate`]s out.
//!
//! ## Why foca (SWIM) and not chitchat (scuttlebutt)
//!
//! Scuttlebutt anti-entropy of per-node key/values (chitchat) is the natural fit for "spread
//! each host's record", and it was the first choice. Checked against chitchat 0.13.0's source:
//! - `create_syn_message`, `process_message` and `update_nodes_liveness` are `pub(crate)`: the
//!   only public way to run it is its tokio server loop (`spawn_chitchat`) behind an async
//!   `Transport`, with gossip targets drawn from an OS-seeded RNG. It cannot be driven sans-IO
//!   nor deterministically.
//! - There is no MTU setting: the datagram bound is a crate-private constant of 65,507 bytes,
//!   the digest is always sent in full, and deltas fill up to that bound (its own comment: a
//!   1400-byte frame "would limit us to 20 nodes or so"). The 1400-byte budget at 64 hosts is
//!   out of reach without IP fragmentation.
//! - Its failure detector and deletion grace read `tokio::time::Instant::now()` internally.
//!
//! foca 2 implements SWIM with the Lifeguard-style suspicion extension, is written sans-IO
//! (a `Runtime` receives "send these bytes", "wake me after", "this member changed"), takes the
//! RNG from the caller (seeded simulations are exact), reads no clock, bounds every message by
//! `max_packet_size`, and supports renewable identities (restarts and rejoin after a partition)
//! and *custom broadcasts* piggybacked on SWIM traffic. SWIM gives membership only, so the
//! records ride on top: each record is cut into chunks (see [`record`]) spread as foca custom
//! broadcasts, plus a direct push/pull on join and when a host hears from a member whose
//! record it lacks, plus a periodic re-offer (`refresh_every`) that repairs losses. Records are
//! versioned by `(epoch, version)`, so the newest wins everywhere.
//!
//! Failure detection is SWIM's probe / indirect probe / suspicion rather than a phi-accrual
//! detector: a member that misses its probe (direct and via `indirect_probes` others) becomes
//! Suspect, and Dead after `suspect_timeout` unless it refutes. Indirect probes are what keep
//! 20 % datagram loss from producing false deaths. `dead_grace` (foca's `remove_down_after`,
//! default 10 min instead of hours) is how long a dead identity and its record are remembered.
//!
//! ## Transport security
//!
//! Every datagram is sealed with AES-256-GCM under the 32-byte cluster key with the cluster
//! name as associated data and replay windows per sender epoch ([`seal`]). Every datagram,
//! sealing included, stays within `GossipConfig::mtu` (default 1400).
//!
//! ## Trust between members
//!
//! The cluster key keeps strangers out; it does not tell members apart. Each host therefore signs
//! its record with its own Ed25519 key, bound to its name and underlay on first sight and
//! persisted ([`trust`]); claims are checked against the cluster CIDR, epochs against the clock
//! ([`policy`]). Replay windows are kept per sender epoch, not per (spoofable) source address.
//!
//! ## Tables and conflicts
//!
//! Records of live members become `PeerUp`/`RouteAdd`/`ArpBinding`/`EspKey` for every VNI the
//! local host also runs; a dead member's are withdrawn; a restarted member's (new epoch) are
//! withdrawn and announced again. Overlapping subnet or address claims are resolved by the
//! older claim, `(since, name)`, on every host alike ([`tables`]).
//!
//! ## Timing (defaults, see [`GossipConfig`])
//!
//! Probe one member every 500 ms (direct ack within 200 ms, else 5 indirect probes), suspicion
//! 4 s, membership gossip to 5 members every 200 ms, record re-offer every 10 s, dead members
//! re-contacted every 3 s, dead identities remembered 10 min. With 15 probers a killed host is
//! usually probed within a fraction of a second, suspected at the end of that probe period, and
//! declared dead 4 s later. Five indirect probes make a false suspicion at 20 % loss rare
//! (a probe fails only if the direct round trip and all five 4-datagram relays fail) and a
//! suspected live host refutes well within 4 s.
//!
//! Measured on the simulator (`tests/gossip_sim.rs`, 1 ms latency, seeded): 64 hosts converge
//! in about 0.5 s; a killed host is withdrawn everywhere in 4.9–5.4 s at 16 hosts; a restarted
//! host is re-announced within 0.5 s; a 2|2 partition heals to identical tables about 5.5 s
//! after the heal; no false death in 5 minutes at 20 % loss; about 0.7 kB/s of gossip per host
//! at 4 hosts and 0.9 kB/s at 64 hosts.

pub mod config;
pub mod fixtures;
pub mod floating;
pub mod identity;
pub mod inbox;
pub mod membership;
pub mod policy;
pub mod record;
pub mod seal;
pub mod services;
pub mod signing;
pub mod tables;
pub mod trust;
mod update;

pub use config::GossipConfig;
pub use floating::{Floating, FloatingAction, FloatingClaim, FloatingCounters, FloatingOwner, FloatingSpec};
pub use membership::{Credentials, GossipStats, Liveness, MemberStatus, Membership};
pub use policy::{ClaimPolicy, RefuseReason, RefusedCounts};
pub use record::{Binding, MemberRecord, NetworkClaim, RecordTooLarge, SubnetClaim};
pub use seal::{ClusterKey, DropCounts, DropReason};
pub use services::{resolve as resolve_services, withdrawn, Proto, ServiceKey, ServiceSpec, ServiceView};
pub use signing::SigningKey;
pub use tables::{Conflict, Contested};
pub use trust::TrustStore;
pub use update::{next_hop, ControlUpdate, PeerInfo};
