//! Test helpers for real-kernel tests: a uniquely named network namespace that is always
//! deleted (also when the test panics), the root check, and `ip`/`bridge` runners.

#![allow(dead_code)]

use std::process::Command;

/// A network namespace `vxs-<purpose>-<pid>`, deleted on drop.
pub struct NetnsGuard {
    /// The namespace name, for `ip -n` and `setns::run_in`.
    pub name: String,
}

impl NetnsGuard {
    /// Creates the namespace with its loopback up.
    pub fn new(purpose: &str) -> Self {
        let name = format!("vxs-{purpose}-{}", std::process::id());
        // A leftover from a crashed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let guard = NetnsGuard { name };
        guard.ip(&["link", "set", "lo", "up"]);
        guard
    }

    /// Runs `ip -n NS ARGS...`, panics on failure, returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `bridge -n NS ARGS...`, panics on failure, returns stdout.
    pub fn bridge(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("bridge", &full)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let out = Command::new("ip").args(["netns", "del", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete network namespace {}: {out:?}", self.name);
        }
    }
}

/// Runs a command, panics with its stderr on failure, returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when the test may touch the kernel (root). Otherwise panics if
/// `VXSWITCH_REQUIRE_ROOT=1`, else prints a loud SKIP line and returns false.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("VXSWITCH_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test}: needs root (VXSWITCH_REQUIRE_ROOT=1)");
    }
    // Written to the process's stderr directly: libtest would swallow eprintln! of a passing test.
    let line = format!(
        "SKIP {test}: needs root to create network namespaces \
         (set VXSWITCH_REQUIRE_ROOT=1 to fail instead)\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// Poll `check` every 50 ms until it holds; panics with `what` after `limit`. Returns how long it
/// took.
pub fn wait_for(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    start.elapsed()
}

/// `vxswitch reload` (binary `bin`) against the daemon at control `socket`: (success, stdout +
/// stderr).
pub fn reload_cli(bin: &std::path::Path, socket: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin).args(["reload", "--socket"]).arg(socket).output().expect("run vxswitch reload");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
