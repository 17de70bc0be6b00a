//! Named network namespaces that delete themselves, plus `ip` helpers.
//!
//! Topology set-up shells out to iproute2 (`ip`), exactly as an operator would type it, so the
//! demo, tests and benchmark double as readable recipes. The daemon itself uses netlink.

use std::io;
use std::process::{Child, Command, Output, Stdio};

/// Run a command; on failure return an error carrying its stderr.
pub fn run_cmd(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{:?} failed ({}): {}", cmd, out.status, String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out)
}

/// `ip ARGS...` in the current namespace.
pub fn ip(args: &[&str]) -> io::Result<()> {
    run_cmd(Command::new("ip").args(args)).map(|_| ())
}

/// A network namespace created by us and deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add NAME`, with loopback up.
    pub fn create(name: &str) -> io::Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        run_cmd(Command::new("ip").arg("-n").arg(&self.name).args(args)).map(|_| ())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run `program args...` inside the namespace and return its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let out = run_cmd(self.command(program).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `program args...` inside the namespace (the child's pid is the program's own:
    /// `ip netns exec` execs it).
    pub fn spawn(&self, program: &str, args: &[&str], log: Stdio) -> io::Result<Child> {
        self.command(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()
    }

    /// Set a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.output("sysctl", &["-qw", &format!("{key}={value}")]).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside first, then delete the namespace.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete namespace {}: {e}", self.name);
        }
    }
}

/// Names of the namespaces that exist now (for leak checks).
pub fn list() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
        .unwrap_or_default()
}
