//! The TAP of every switched network, indexed by port, and what happens when one disappears.
//!
//! A TAP can vanish under a running daemon: `ip link del vxs1042`, a container runtime tearing
//! down what it thinks is its own, a bridge deleted with its ports. The kernel then detaches the
//! open fd: `poll` reports `POLLERR` on it for ever and every read fails with `EBADFD`. Left
//! alone, the loop would wake up at once on every iteration: 100 % CPU, silently.
//!
//! Decision: **recreate the TAP**, not fail the network. The network's configuration did not
//! change and the switch's state for the port (peers, routes, FDB, bindings) is still right; only
//! the device is gone. So the broken fd is closed and taken out of the poll set at once (no
//! spin), the loss is logged and counted (`taps_lost`), and the TAP is created again with the
//! same name, MTU and offload, then re-enslaved to its bridge and given its address
//! (`taps_recreated`). If that fails (the bridge went too, say), the network is down, and that is
//! loud: each failed attempt is logged as an error and counted (`tap_recreate_failures`), and
//! attempts are retried with a backoff from 1 s up to 30 s, so the network comes back by itself
//! once its bridge does, while the other networks keep forwarding. Ports are stable: the port of
//! a recreated TAP does not change, so nothing else needs to know.

use std::time::{Duration, Instant};

use crate::config::{Config, Network};
use crate::dataplane::PortId;
use crate::sys::fastpath::tap::Tap;
use crate::sys::fastpath::DriverCounters;
use crate::sys::kernel::links;
use crate::sys::SysError;

/// First wait before recreating a lost TAP again after a failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How one port's TAP is made, and when to try again if it is missing.
#[derive(Debug)]
struct Setup {
    net: Network,
    offload: Option<bool>,
    /// Set while the port has no TAP: when to try next, and the failed attempts so far.
    retry: Option<(Instant, u32)>,
}

/// The TAPs of the switched networks, by port.
#[derive(Debug, Default)]
pub struct TapPorts {
    /// The open TAP of each port; `None` while a port has no TAP (lost, or a free port).
    pub taps: Vec<Option<Tap>>,
    setups: Vec<Option<Setup>>,
}

impl TapPorts {
    /// One TAP per switched network of `config`, configured and up, in port order.
    pub fn open(config: &Config) -> Result<Self, SysError> {
        let mut ports = TapPorts::default();
        for (port, net) in config.switched_networks().enumerate() {
            ports.add(port, net.clone(), tap_offload(config, net))?;
        }
        Ok(ports)
    }

    /// Create the TAP of `net` for `port` (a free port) and remember how, for recreating it.
    pub fn add(&mut self, port: PortId, net: Network, offload: Option<bool>) -> Result<(), SysError> {
        let tap = create(&net, offload)?;
        // A recreated TAP must match the sockets' GSO/GRO set-up chosen with the first one.
        let offload = Some(tap.offload());
        if self.taps.len() <= port {
            self.taps.resize_with(port + 1, || None);
            self.setups.resize_with(port + 1, || None);
        }
        self.taps[port] = Some(tap);
        self.setups[port] = Some(Setup { net, offload, retry: None });
        Ok(())
    }

    /// As [`TapPorts::add`], but a TAP that cannot be created now is retried like a lost one
    /// (the error is returned for the report, and counted).
    pub fn add_or_retry(
        &mut self,
        port: PortId,
        net: Network,
        offload: Option<bool>,
        now: Instant,
        driver: &mut DriverCounters,
    ) -> Result<(), SysError> {
        let Err(e) = self.add(port, net.clone(), offload) else { return Ok(()) };
        driver.tap_recreate_failures += 1;
        tracing::error!(tap = %net.tap, vni = %net.vni, "network down: cannot create its TAP: {e}; next attempt in {FIRST_RETRY:?}");
        if self.taps.len() <= port {
            self.taps.resize_with(port + 1, || None);
            self.setups.resize_with(port + 1, || None);
        }
        self.taps[port] = None;
        self.setups[port] = Some(Setup { net, offload, retry: Some((now + FIRST_RETRY, 1)) });
        Err(e)
    }

    /// Close the TAP of `port` and forget it (the network was removed).
    pub fn remove(&mut self, port: PortId) {
        if let Some(t) = self.taps.get_mut(port) {
            *t = None;
        }
        if let Some(s) = self.setups.get_mut(port) {
            *s = None;
        }
    }

    /// The configuration of the network on `port`.
    pub fn network(&self, port: PortId) -> Option<&Network> {
        Some(&self.setups.get(port)?.as_ref()?.net)
    }

    /// The TAP of `port` is broken (`why`): close it now, count it, and recreate it at `now`.
    pub fn lost(&mut self, port: PortId, why: &str, now: Instant, driver: &mut DriverCounters) {
        let Some(setup) = self.setups.get_mut(port).and_then(Option::as_mut) else { return };
        if self.taps[port].take().is_none() {
            return;
        }
        driver.taps_lost += 1;
        tracing::error!(tap = %setup.net.tap, vni = %setup.net.vni, "TAP lost ({why}); recreating it");
        setup.retry = Some((now, 0));
    }

    /// Recreate the lost TAPs whose time has come.
    pub fn recover(&mut self, now: Instant, driver: &mut DriverCounters) {
        for (port, setup) in self.setups.iter_mut().enumerate() {
            let Some(setup) = setup.as_mut() else { continue };
            let Some((at, attempts)) = setup.retry else { continue };
            if at > now {
                continue;
            }
            match create(&setup.net, setup.offload) {
                Ok(tap) => {
                    driver.taps_recreated += 1;
                    tracing::info!(tap = %setup.net.tap, vni = %setup.net.vni, "TAP recreated");
                    self.taps[port] = Some(tap);
                    setup.retry = None;
                }
                Err(e) => {
                    driver.tap_recreate_failures += 1;
                    let wait = FIRST_RETRY.saturating_mul(1 << attempts.min(5)).min(MAX_RETRY);
                    tracing::error!(tap = %setup.net.tap, vni = %setup.net.vni, "network down: cannot recreate its TAP: {e}; next attempt in {wait:?}");
                    setup.retry = Some((now + wait, attempts + 1));
                }
            }
        }
    }

    /// When [`TapPorts::recover`] next has work.
    pub fn next_retry(&self) -> Option<Instant> {
        self.setups.iter().flatten().filter_map(|s| s.retry.map(|(at, _)| at)).min()
    }

    /// Replace the configuration of the network on `port`, whose TAP settings did not change.
    pub fn set_network(&mut self, port: PortId, net: Network) {
        if let Some(setup) = self.setups.get_mut(port).and_then(Option::as_mut) {
            setup.net = net;
        }
    }

    /// Every port with a network, and the network's configuration, in port order.
    pub fn networks(&self) -> impl Iterator<Item = (PortId, &Network)> {
        self.setups.iter().enumerate().filter_map(|(port, s)| Some((port, &s.as_ref()?.net)))
    }

    /// The open TAPs and their ports.
    pub fn open_taps(&self) -> impl Iterator<Item = (PortId, &Tap)> {
        self.taps.iter().enumerate().filter_map(|(port, t)| Some((port, t.as_ref()?)))
    }
}

/// The offload a network's TAP asks for: the `[underlay] offload` setting, for VXLAN and ESP
/// networks alike (ESP segments are sealed one by one and sent in `UDP_SEGMENT` runs).
pub fn tap_offload(config: &Config, _net: &Network) -> Option<bool> {
    config.underlay.offload
}

/// Create the TAP of `net`, enslave it to its bridge, give it its address, and bring it up.
fn create(net: &Network, offload: Option<bool>) -> Result<Tap, SysError> {
    // The TAP's MTU is `tap_mtu`, not the overlay MTU: see `Network::tap_mtu`.
    let tap = Tap::create(&net.tap, net.tap_mtu, offload)?;
    links::configure_link(&net.tap, net.bridge.as_deref(), net.address)?;
    tracing::info!(tap = %net.tap, vni = %net.vni, mtu = net.mtu, tap_mtu = net.tap_mtu, offload = tap.offload(), "TAP up");
    Ok(tap)
}
