//! Ctrl-C and SIGTERM for the lab commands (demo, benchmark): the signal only sets a flag, the
//! running step notices it, and the lab is dropped normally so every namespace it made is removed.
//! `signal-hook` registers the handler without `unsafe` in vxswitch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Turn SIGINT and SIGTERM into the flag read by [`interrupted`].
pub fn install() -> std::io::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(flag()))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn interrupted() -> bool {
    flag().load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_sigterm_sets_the_flag() {
        install().unwrap();
        assert!(!interrupted());
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        assert!(interrupted());
        flag().store(false, Ordering::SeqCst);
    }
}
