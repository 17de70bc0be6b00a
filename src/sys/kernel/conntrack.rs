//! Deleting conntrack entries with the `conntrack` tool (package conntrack), without waiting.
//!
//! Why the tool and not ctnetlink: the netlink crates vxswitch uses (netlink-packet-route,
//! rtnetlink) have no conntrack messages, and a hand-built ctnetlink delete-by-filter is more code
//! than the few commands it replaces. The processes are spawned and not waited for, so the loop
//! never blocks on them; they are reaped on later calls and waited for at shutdown.

use std::process::{Child, Command, Stdio};

/// Running `conntrack -D` processes.
#[derive(Debug, Default)]
pub struct Conntrack {
    children: Vec<Child>,
}

impl Conntrack {
    /// Starts `conntrack -D ARGS...`; an error when the tool cannot be run.
    pub fn delete(&mut self, args: &[&str]) -> std::io::Result<()> {
        self.reap(false);
        let child =
            Command::new("conntrack").arg("-D").args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        self.children.push(child);
        Ok(())
    }

    /// Collects finished processes (waits for all of them when `wait`).
    pub fn reap(&mut self, wait: bool) {
        if wait {
            for c in &mut self.children {
                let _ = c.wait();
            }
            self.children.clear();
        } else {
            self.children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        }
    }
}
