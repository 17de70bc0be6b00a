//! The built-in IPAM's store: one table of allocations per network, on disk.
//!
//! `<dataDir>/<network name>/allocations.json` holds the [`Table`]; `<...>/lock` is `flock`ed
//! exclusively around every read-modify-write, so concurrent plugin runs (a runtime starting 20
//! containers at once) queue up and never see each other's half-done changes. The table is
//! written with [`write_atomically`] (temporary file, fsync, rename, directory fsync): a crash —
//! of the plugin, the runtime or the host — leaves the old table or the new one, never a torn
//! file. Allocations survive daemon restarts and reboots; what a crashed runtime leaked is
//! released by `GC`.

use std::io;
use std::path::{Path, PathBuf};

use crate::cni::ipam::Table;
use crate::keyfile::write_atomically;
use crate::sys::daemon::instance_lock::lock_file;

/// Where allocations are kept by default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/vxswitch";

/// The store of one network.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of network `name` under `data_dir`.
    pub fn new(data_dir: &Path, name: &str) -> io::Result<Store> {
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("network name {name:?} cannot name a directory")));
        }
        Ok(Store { dir: data_dir.join(name) })
    }

    /// The table file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("allocations.json")
    }

    /// Run `change` on the table under the lock and save the table if `change` altered it.
    pub fn update<T>(&self, change: impl FnOnce(&mut Table) -> T) -> io::Result<T> {
        std::fs::create_dir_all(&self.dir)?;
        let _lock = lock_file(&self.dir.join("lock"), true)?;
        let mut table = self.read()?;
        let before = table.clone();
        let out = change(&mut table);
        if table != before {
            let bytes = serde_json::to_vec_pretty(&table).map_err(io::Error::other)?;
            write_atomically(&self.path(), &bytes)?;
        }
        Ok(out)
    }

    /// The table as stored (empty when there is none yet).
    pub fn read(&self) -> io::Result<Table> {
        match std::fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path().display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Table::default()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::cni::ipam::Pool;

    #[test]
    fn allocations_persist_and_concurrent_updates_never_collide() {
        let dir = std::env::temp_dir().join(format!("vxs-ipam-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::new(&dir, "net").unwrap();
        let pool = Pool::new("10.9.0.0/24".parse().unwrap(), None, None, Some(Ipv4Addr::new(10, 9, 0, 1).into())).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (store, pool) = (store.clone(), pool.clone());
                std::thread::spawn(move || store.update(|t| t.allocate(&pool, &format!("c{i}"), "eth0")).unwrap().unwrap())
            })
            .collect();
        let mut got: Vec<std::net::IpAddr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 16);
        let again = Store::new(&dir, "net").unwrap().read().unwrap();
        assert_eq!(again.allocations.len(), 16, "read back from disk");
        assert!(Store::new(&dir, "../x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
