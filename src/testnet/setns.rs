//! Running code inside a named network namespace.
//!
//! A network namespace is a property of a *thread*, not of a process: `setns(2)` switches only
//! the calling thread. Switching a thread that also runs other work (an event loop, a tokio
//! worker) would silently move that work too, so [`run_in`] spawns a dedicated OS thread,
//! enters `/run/netns/NAME` there (the file `ip netns add NAME` creates), runs the closure and
//! returns its result. The thread ends with the closure, so nothing else ever runs in it.
//!
//! Sockets keep the namespace they were opened in: a [`Netlink`](crate::sys::kernel::netlink::Netlink)
//! or UDP socket created inside the closure and returned from it works in that namespace from
//! any thread afterwards.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

/// Where `ip netns add` puts its named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Why a closure could not be run inside a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `/run/netns/NAME` could not be opened (no such namespace, or no permission).
    #[error("open network namespace {path}: {source}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `setns(2)` refused to enter the namespace (usually: not root / no CAP_SYS_ADMIN).
    #[error("setns into network namespace {name}: {source}")]
    Setns {
        /// The namespace name.
        name: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The thread could not be spawned.
    #[error("spawn thread for network namespace {name}: {source}")]
    Spawn {
        /// The namespace name.
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The path of the namespace file for `name`.
pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from(NETNS_RUN_DIR).join(name)
}

/// Runs `f` on a fresh OS thread inside the network namespace `name` and returns its result.
/// A panic inside `f` is resumed on the calling thread.
pub fn run_in<F, T>(name: &str, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let path = path_of(name);
    let file = File::open(&path).map_err(|source| NetnsError::Open { path, source })?;
    let owned = name.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || -> Result<T, NetnsError> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Setns { name: owned, source })?;
            drop(file);
            Ok(f())
        })
        .map_err(|source| NetnsError::Spawn { name: name.to_string(), source })?;
    match thread.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespace_is_an_open_error_naming_the_path() {
        let name = format!("vxs-missing-{}", std::process::id());
        let err = run_in(&name, || ()).unwrap_err();
        assert!(matches!(err, NetnsError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("/run/netns/{name}")), "{err}");
    }
}
