//! A QEMU guest running Debian's stock kernel, for tests against kernel features this machine's
//! kernel lacks (ESP/AES-GCM in xfrm).
//!
//! Why this shape: the guest needs a real Linux network stack, not a second userland. So the
//! guest boots Debian's `linux-image-amd64` (prepared by `tests/qemu/prepare-kernel.sh`) with a
//! tiny initramfs (static busybox, the virtio/9p/overlay modules and [`INIT`]) and then runs
//! on the host's own root filesystem, mounted read-only over 9p with a tmpfs overlay: every tool
//! (`ip`, `perl`, the `vxswitch` binary under test) is there without building an image. Software
//! emulation (TCG) is used because KVM is not available everywhere CI runs.
//!
//! Networking: `-netdev tap` makes QEMU create a TAP in the namespace it runs in; the caller
//! puts that TAP on a bridge of its lab. The guest reports on its serial console, written to a
//! file that [`Guest::wait_for`] polls for markers. Dropping a [`Guest`] kills QEMU, also when a
//! test fails half way.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::netns::Netns;

/// The guest's `/init` (busybox sh): drivers, 9p root, overlay, `switch_root` to the script.
pub const INIT: &str = include_str!("qemu/init.sh");

/// Where `tests/qemu/prepare-kernel.sh` puts the kernel unless `VXSWITCH_QEMU_KERNEL` says otherwise.
pub const DEFAULT_KERNEL_DIR: &str = "/var/cache/vxswitch/qemu-kernel";

/// Modules the initramfs loads before mounting the host root, in dependency order (from
/// `modprobe --show-depends virtio_pci virtio_net 9pnet_virtio 9p overlay` on Debian 6.1).
const BOOT_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "net/9p/9pnet.ko",
    "net/9p/9pnet_virtio.ko",
    "fs/netfs/netfs.ko",
    "fs/fscache/fscache.ko",
    "fs/9p/9p.ko",
    "fs/overlayfs/overlay.ko",
];

/// A prepared guest kernel: `vmlinuz` and its module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// `uname -r` of the guest kernel.
    pub release: String,
    /// The module tree (`.../lib/modules/RELEASE`).
    pub modules: PathBuf,
}

impl Kernel {
    /// The kernel prepared in `VXSWITCH_QEMU_KERNEL` (or [`DEFAULT_KERNEL_DIR`]).
    pub fn find() -> Result<Kernel, String> {
        let dir = std::env::var_os("VXSWITCH_QEMU_KERNEL").map_or_else(|| PathBuf::from(DEFAULT_KERNEL_DIR), PathBuf::from);
        let release = fs::read_to_string(dir.join("release"))
            .map_err(|e| format!("no guest kernel in {} ({e}): run tests/qemu/prepare-kernel.sh", dir.display()))?;
        let release = release.trim().to_string();
        let modules = dir.join("lib/modules").join(&release);
        Ok(Kernel { vmlinuz: dir.join("vmlinuz"), release, modules })
    }
}

/// What a guest test needs on the host besides the kernel; the names of missing programs.
pub fn missing_tools() -> Vec<&'static str> {
    ["qemu-system-x86_64", "busybox"].into_iter().filter(|p| which(p).is_none()).collect()
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// The kernel to boot.
    pub kernel: Kernel,
    /// The script the guest runs after boot (a path on the host, read through the 9p root); it
    /// gets the path of the environment file as `$1`.
    pub script: PathBuf,
    /// `KEY=value` lines for the script (shell syntax; written to the environment file).
    pub env: Vec<(String, String)>,
    /// Name of the TAP QEMU creates for the guest's `eth0`.
    pub tap: String,
    /// Scratch directory (initramfs, console log).
    pub dir: PathBuf,
}

/// A running guest; dropping it kills QEMU.
#[derive(Debug)]
pub struct Guest {
    child: Child,
    console: PathBuf,
    started: Instant,
}

impl Guest {
    /// Build the initramfs and start QEMU inside `ns` (where its TAP appears).
    pub fn boot(ns: &Netns, spec: &GuestSpec) -> io::Result<Guest> {
        fs::create_dir_all(&spec.dir)?;
        let initrd = spec.dir.join("initrd.cpio");
        fs::write(&initrd, initramfs(spec)?)?;
        let console = spec.dir.join("console.log");
        let _ = fs::remove_file(&console);
        let mac = "52:54:00:12:34:56";
        let append = "console=ttyS0 panic=-1 quiet loglevel=3 net.ifnames=0";
        let child = ns
            .command("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024", "-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-kernel", &spec.kernel.vmlinuz.to_string_lossy(), "-initrd", &initrd.to_string_lossy(), "-append", append])
            .args(["-serial", &format!("file:{}", console.display())])
            .args(["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"])
            .args(["-netdev", &format!("tap,id=n0,ifname={},script=no,downscript=no", spec.tap)])
            .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={mac}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(spec.dir.join("qemu.stderr"))?)
            .spawn()?;
        Ok(Guest { child, console, started: Instant::now() })
    }

    /// The console output so far.
    pub fn console(&self) -> String {
        fs::read(&self.console).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Seconds since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wait until the console shows a line starting with `marker`; returns the whole console.
    /// Fails when QEMU exits first or `patience` runs out (with the console's tail).
    pub fn wait_for(&mut self, marker: &str, patience: Duration) -> io::Result<String> {
        let start = Instant::now();
        loop {
            let text = self.console();
            if text.lines().any(|l| l.trim_start_matches('\r').starts_with(marker)) {
                return Ok(text);
            }
            // The guest's own lines (kernel messages start with "[").
            let tail = || {
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start_matches('\r').starts_with('[')).collect();
                lines[lines.len().saturating_sub(60)..].join("\n")
            };
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("QEMU exited ({status}) before {marker:?}; console:\n{}", tail())));
            }
            if start.elapsed() > patience {
                return Err(io::Error::other(format!("no {marker:?} from the guest within {patience:?}; console:\n{}", tail())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for QEMU to exit (the guest powers off); kills it after `patience`.
    pub fn wait_exit(&mut self, patience: Duration) -> io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < patience {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        Err(io::Error::other("the guest did not power off"))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `PREFIX name value` line of a console, as (name, value).
pub fn results<'a>(console: &'a str, prefix: &str) -> Vec<(&'a str, &'a str)> {
    console
        .lines()
        .filter_map(|l| l.trim_start_matches('\r').strip_prefix(prefix))
        .filter_map(|rest| rest.trim().split_once(' '))
        .map(|(k, v)| (k, v.trim()))
        .collect()
}

/// The console between the lines `begin` and `end`.
pub fn section<'a>(console: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let from = console.find(begin)? + begin.len();
    let to = console[from..].find(end)? + from;
    Some(&console[from..to])
}

/// The initramfs: busybox, the boot modules, `/init`, the module list and the environment.
fn initramfs(spec: &GuestSpec) -> io::Result<Vec<u8>> {
    let busybox = which("busybox").ok_or_else(|| io::Error::other("busybox not found (apt-get install busybox-static)"))?;
    // The tree holding `RELEASE/`, bound over the guest's /lib/modules.
    let tree = spec.kernel.modules.parent().unwrap_or(&spec.kernel.modules);
    let mut env = format!("VXS_MODULES='{}'\nVXS_SCRIPT='{}'\n", tree.display(), spec.script.display());
    for (k, v) in &spec.env {
        env += &format!("{k}='{v}'\n");
    }
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "m"] {
        cpio.dir(dir)?;
    }
    cpio.file("bin/busybox", 0o755, &fs::read(busybox)?)?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    cpio.file("vxs.env", 0o644, env.as_bytes())?;
    let mut list = String::new();
    for m in BOOT_MODULES {
        let name = Path::new(m).file_name().and_then(|n| n.to_str()).unwrap_or(m);
        cpio.file(&format!("m/{name}"), 0o644, &fs::read(spec.kernel.modules.join("kernel").join(m))?)?;
        list += name;
        list.push('\n');
    }
    cpio.file("modules", 0o644, list.as_bytes())?;
    Ok(cpio.finish())
}

/// A `newc` cpio archive (what the kernel unpacks as an initramfs).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.ino += 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        write!(self.out, "070701")?;
        for f in fields {
            write!(self.out, "{f:08x}")?;
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, 0o040_755, &[])
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, 0o100_000 | perm, data)
    }

    fn finish(mut self) -> Vec<u8> {
        let _ = self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(&out[6 + 8..6 + 16], b"000081ed", "regular file, mode 0755");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn results_and_sections_are_read_from_the_console() {
        let console = "boot\r\nVXS-RESULT ping {\"a\":1}\nnoise\nBEGIN\nstate\nEND\n";
        assert_eq!(results(console, "VXS-RESULT "), vec![("ping", "{\"a\":1}")]);
        assert_eq!(section(console, "BEGIN\n", "END"), Some("state\n"));
    }
}
