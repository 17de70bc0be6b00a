//! TAP devices, one per overlay network, created with `tun-rs`.
//!
//! The devices are not persistent: the kernel deletes a TAP when its last fd closes, so vxswitch
//! exiting for any reason (clean shutdown, crash, SIGKILL) never leaves a stale TAP behind, and a
//! restart simply creates it again.
//!
//! Offload: a TAP opened with `IFF_VNET_HDR` and `TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6)`
//! carries a 10-byte virtio-net header in front of every frame, and the bridge then forwards TCP
//! super-frames (TSO) and partial checksums to it instead of segmenting them in software (see
//! [`super::gso`] and [`super::gro`]). tun-rs' `offload(true)` creates such a device but also asks
//! for UDP segmentation offload (USO); the mask is set again here to TCP only, because vxswitch
//! splits TCP super-frames but not UDP ones. ECN (`TUN_F_TSO_ECN`) stays off, so the kernel
//! segments ECN super-frames itself. Without offload, frames arrive one per `read`, no header.
#![allow(unsafe_code)] // raw syscalls the safe crates do not wrap; each block has a SAFETY note

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::gro::ZERO_HDR;
use super::virtio::{VirtioNetHdr, VNET_HDR_LEN};
use crate::sys::SysError;

/// The offloads asked for: checksum, TSO for IPv4 and IPv6 (no ECN, no USO).
const TCP_OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// Whether a TAP I/O error means the device is gone (deleted from outside: the kernel detached
/// the fd, which now fails every read with `EBADFD`).
pub fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADFD | libc::ENODEV | libc::ENXIO))
}

/// An open TAP device.
pub struct Tap {
    dev: SyncDevice,
    name: String,
    vnet_hdr: bool,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("name", &self.name).field("fd", &self.dev.as_raw_fd()).field("offload", &self.vnet_hdr).finish()
    }
}

impl Tap {
    /// Create (or attach to) the TAP `name` with the given MTU, non-blocking and up.
    /// `offload`: `Some(true)` requires TSO/checksum offload, `Some(false)` turns it off, `None`
    /// uses it when the kernel accepts it (and logs when it does not).
    pub fn create(name: &str, mtu: u32, offload: Option<bool>) -> Result<Self, SysError> {
        let ctx = |op: &'static str| {
            let name = name.to_string();
            move |source| SysError::Tap { op, name, source }
        };
        let mtu = u16::try_from(mtu).map_err(|_| ctx("mtu")(io::Error::new(io::ErrorKind::InvalidInput, "MTU above 65535")))?;
        let build = |vnet: bool| -> io::Result<SyncDevice> {
            let dev = DeviceBuilder::new().name(name).layer(Layer::L2).mtu(mtu).offload(vnet).enable(true).build_sync()?;
            if vnet {
                // SAFETY: TUNSETOFFLOAD takes its argument by value; the fd is a live TAP.
                let rc = unsafe { libc::ioctl(dev.as_raw_fd(), libc::TUNSETOFFLOAD, TCP_OFFLOADS as libc::c_ulong) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(dev)
        };
        let (dev, vnet_hdr) = match offload {
            Some(false) => (build(false).map_err(ctx("create"))?, false),
            Some(true) => (build(true).map_err(ctx("create with offload (TUNSETOFFLOAD)"))?, true),
            None => match build(true) {
                Ok(dev) => (dev, true),
                Err(e) => {
                    tracing::info!(tap = name, "TAP offload (IFF_VNET_HDR, TSO) refused: {e}; frames go one by one");
                    (build(false).map_err(ctx("create"))?, false)
                }
            },
        };
        dev.set_nonblocking(true).map_err(ctx("set_nonblocking"))?;
        Ok(Tap { dev, name: name.to_string(), vnet_hdr })
    }

    /// Whether frames carry a virtio-net header (TSO/checksum offload is on).
    pub fn offload(&self) -> bool {
        self.vnet_hdr
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

    /// Read one frame; `Ok(None)` when none is pending. On an offload TAP the frame may be a
    /// super-frame with a partial checksum: use [`Tap::read_offload`] there.
    // hot path
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.vnet_hdr {
            return self.read_offload(buf, &mut []).map(|r| r.map(|(len, _)| len));
        }
        match self.dev.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Read one frame and its virtio header from an offload TAP. The frame fills `first`, then
    /// continues in `rest` (so small frames land directly where the caller wants them and
    /// super-frames spill into a large buffer). Returns the frame length.
    // hot path
    pub fn read_offload(&self, first: &mut [u8], rest: &mut [u8]) -> io::Result<Option<(usize, VirtioNetHdr)>> {
        debug_assert!(self.vnet_hdr);
        let mut hdr = [0u8; VNET_HDR_LEN];
        let mut iov = [
            libc::iovec { iov_base: hdr.as_mut_ptr().cast(), iov_len: hdr.len() },
            libc::iovec { iov_base: first.as_mut_ptr().cast(), iov_len: first.len() },
            libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() },
        ];
        // SAFETY: the iovecs point at live, writable buffers of the stated lengths.
        let n = unsafe { libc::readv(self.fd(), iov.as_mut_ptr(), iov.len() as libc::c_int) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
        }
        let n = n as usize;
        if n < VNET_HDR_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "read shorter than the virtio header"));
        }
        Ok(Some((n - VNET_HDR_LEN, VirtioNetHdr::parse(&hdr))))
    }

    /// Write one ordinary frame (with a zeroed virtio header on an offload TAP).
    // hot path
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        if self.vnet_hdr {
            return self.writev(&[IoSlice::new(&ZERO_HDR), IoSlice::new(frame)]).map(|n| n.saturating_sub(VNET_HDR_LEN));
        }
        self.dev.send(frame)
    }

    /// Write one frame gathered from `iov`, virtio header included on an offload TAP.
    // hot path
    pub fn writev(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
        let n = unsafe { libc::writev(self.fd(), iov.as_ptr().cast(), iov.len() as libc::c_int) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
