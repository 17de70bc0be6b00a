//! ESP tunnels in userspace: RFC 4303 ESP in tunnel mode, carried in UDP per RFC 3948, with
//! AEAD suites AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634).
//!
//! The module is sans-IO: it seals and opens packets in caller-owned buffers, and every timer
//! decision takes `now` as an argument. The pieces:
//!
//! - [`sa`]: one SA per direction. [`OutboundSa::seal`] writes SPI, sequence number and IV into
//!   the [`ESP_HEADROOM`] in front of the inner packet and padding, trailer and ICV into the
//!   [`ESP_TAILROOM`] behind it; [`InboundSa::open`] checks the replay window *before*
//!   decrypting, verifies and decrypts in place, updates the window *after* the ICV verified,
//!   checks the padding, and returns the inner packet's range.
//! - [`crate::replay`]: the anti-replay bitmap (default 1024, up to 4096) with ESN inference,
//!   shared with the gossip opener.
//! - [`keys`]: the host's long-term X25519 key (a 0600 file), per-peer per-direction SA
//!   derivation with HKDF-SHA256, and manual keys in `ip xfrm state` form.
//! - [`session`]: [`PeerSession`], the per-peer state machine: current outbound SA, current and
//!   previous inbound SAs during a rekey overlap, rekey on a timer or a packet budget.
//! - [`error`]: [`EspError`] and the per-reason [`DropCounters`].
//! - [`state`]: what a host persists across restarts (manual sequence marks, the last epoch).
//!
//! Why these choices:
//! - **IV = sequence number.** RFC 4106 needs a nonce that never repeats under one key; the
//!   64-bit sequence number already has that property as long as no SA ever wraps or goes back,
//!   so no random IV generator sits in the hot path.
//! - **Sequence numbers never wrap.** An outbound SA refuses to seal after its last number and
//!   reports [`OutboundSa::needs_rekey`] long before (a packet budget): automatic sessions rotate
//!   to the next generation then, manual ones warn at 90 % and stop with an error and a counter.
//! - **Crypto from `aws-lc-rs`.** Its AES-GCM is the fastest measured on our hosts
//!   (58-61 Gbit/s per core for AES-256-GCM against 46 for `ring`), and unlike `ring` it offers
//!   static (non-ephemeral) X25519 keys and HKDF, which the key file and derivation need.
//!
//! # Why no (key, nonce) pair is ever used twice
//!
//! - **Manual keys** do not change across restarts, so their sequence numbers must not either.
//!   An SA seals only numbers the driver has confirmed as persisted ([`OutboundSa::resume_after`],
//!   [`OutboundSa::reservation_wanted`], [`OutboundSa::confirm_reservation`]); the driver writes
//!   the end of each block to the state file ([`state`]) and fsyncs it *before* confirming, and a
//!   start continues after the persisted mark. Whenever the process dies (SIGKILL before the write,
//!   between write and confirmation, between packets) every number it used is at or below what is
//!   on disk, so the next life starts above it: numbers skip forward, never back. A state file
//!   that cannot be read refuses the start instead of guessing. New keys (another key id) start
//!   at 1, which is a new key. Marks are kept per (SPI, key id), and the configuration refuses
//!   an outbound key given twice on the host (in any network, to any peer), so each mark belongs
//!   to one SA and no two SAs, of one encrypted network or of several, seal under one key.
//! - **Automatic keys** are derived from (local key, local epoch, peer key, peer epoch,
//!   generation, VNI), and each derived SA starts at 1. The VNI makes the SAs of two encrypted
//!   networks between the same hosts different keys, so the argument below holds per network. The local epoch of a start is above every
//!   earlier one (wall clock, raised above the epoch in the state file and persisted before use,
//!   so a clock step back cannot repeat it); within one start, a session for a given peer key and
//!   epoch only moves to higher generations, and a session that is dropped and rebuilt (peer left
//!   and came back, two records making the key flip) resumes above the generations used
//!   (`dataplane::esp::resume`, keyed by VNI, peer key and epoch), with at most one live session
//!   per network, peer key and epoch. So every
//!   (key, sequence number) pair belongs to one SA of one session, used once.
//! - **Epochs only move forward** in hellos, so a replayed hello of a peer's earlier life is
//!   refused instead of bringing its old keys (and the peer's refused genuine hellos) back.
//!
//! Tests: `tests/esp_nonce_props.rs` (random restart, crash, rekey, flip and clock-step sequences,
//! every (SPI, key id, sequence) sealed is unique), `tests/esp_lifecycle_scenarios.rs` and the
//! SIGKILL test in `tests/esp_netns.rs` (checked on a capture).

pub mod error;
pub mod hello;
#[cfg(test)]
mod kat;
pub mod keys;
pub mod sa;
pub mod session;
pub mod state;

pub use crate::replay::{ReplayWindow, DEFAULT_WINDOW, MAX_WINDOW};
pub use error::{DropCounters, DropReason, EspError};
pub use keys::{random_epoch, start_epoch, Direction, HostKey, HostKeyError, ManualKeyError, ManualSa, SessionKeys};
pub use sa::{
    sealed_len, InboundSa, Opened, OutboundSa, Suite, DEFAULT_PACKET_BUDGET, ESP_HEADROOM, ESP_ICV_LEN, ESP_MIN_LEN, ESP_TAILROOM,
    NEXT_HEADER_ETHERNET, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6, RESERVATION_BLOCK,
};
pub use session::{PeerSession, ResumePoint, SessionConfig, SessionStats};
pub use state::{EspState, StateError};
