//! TAP devices, one per overlay network, created with `tun-rs`.
//!
//! The devices are not persistent: the kernel deletes a TAP when its last fd closes, so vxswitch
//! exiting for any reason (clean shutdown, crash, SIGKILL) never leaves a stale TAP behind, and a
//! restart simply creates it again. No offloads yet: frames arrive one per `read` (see
//! PERFORMANCE.md for the virtio-header/TSO plan; the buffers already have the headroom it needs).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::SysError;

/// An open TAP device.
pub struct Tap {
    dev: SyncDevice,
    name: String,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("name", &self.name).field("fd", &self.dev.as_raw_fd()).finish()
    }
}

impl Tap {
    /// Create (or attach to) the TAP `name` with the given MTU, non-blocking and up.
    pub fn create(name: &str, mtu: u32) -> Result<Self, SysError> {
        let ctx = |op: &'static str| {
            let name = name.to_string();
            move |source| SysError::Tap { op, name, source }
        };
        let mtu = u16::try_from(mtu).map_err(|_| {
            ctx("mtu")(io::Error::new(io::ErrorKind::InvalidInput, "MTU above 65535"))
        })?;
        let dev = DeviceBuilder::new()
            .name(name)
            .layer(Layer::L2)
            .mtu(mtu)
            .enable(true)
            .build_sync()
            .map_err(ctx("create"))?;
        dev.set_nonblocking(true).map_err(ctx("set_nonblocking"))?;
        Ok(Tap { dev, name: name.to_string() })
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fd, for polling.
    pub fn fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }

    /// The TAP's own MAC address.
    pub fn mac(&self) -> io::Result<[u8; 6]> {
        self.dev.mac_address()
    }

    /// Read one frame; `Ok(None)` when none is pending. // hot path
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.dev.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write one frame. // hot path
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        self.dev.send(frame)
    }
}
