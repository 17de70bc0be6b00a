//! The daemon's scheduling priority (`[underlay] priority_boost = N`: nice -N; default 0, the
//! nice value it was started with), so that a frame arriving on a busy host can be forwarded
//! before the other work on that core has used up its turn.
//!
//! Why: a round trip through two daemons needs three scheduler wake-ups (the sending daemon, the
//! receiving daemon, the application) where kernel vxlan needs one (the application): its
//! forwarding runs in softirq context, which no task can delay. With the cores busy (other
//! builds, load 6-8 on the 2-vCPU lab), a woken daemon at nice 0 often waits behind the running
//! task, and between its busy-poll rounds it yields to tasks that then keep the core for their
//! whole slice. Measured side by side on that lab (1 ms pings, 300 each, default busy-polling):
//! RTT p50 139-207 us and p99 3.2-6.5 ms at nice 0, against 76-192 us and 0.15-6.6 ms at
//! nice -10 (two runs in three with p99 under 250 us). But in two `vxswitch bench` runs with
//! `--variant priority_boost=0` next to 10 (3 repeats each, same load) the boost did not hold
//! up: RTT p50 equal (86 / 87 us), p99 1006 against 260 us in one run, and the 64-byte UDP
//! rate lower (67 against 131 kpps, ranges apart): a boosted daemon preempts the very
//! processes that produce and consume the traffic. So it is off by default, a knob for hosts
//! where the daemon shares its cores with batch work and latency matters more than bulk rate.
//!
//! Also tried and dropped: asking EEVDF for a short slice (`sched_attr::sched_runtime` 100 us,
//! Linux 6.12+) changed nothing measurable; ending a busy-poll spin when a yield showed the core
//! contended (and blocking, to be woken by the frame instead) made p50 worse (152-192 us against
//! 81-150 us in the same series).
#![allow(unsafe_code)] // setpriority(2); the SAFETY notes are at the calls

use std::io;

/// Run the calling thread, and every thread it spawns from now on, at nice `-boost` (0: leave
/// the nice value as it is). Lowering the nice value needs `CAP_SYS_NICE` (root has it).
pub fn raise_priority(boost: u32) -> io::Result<()> {
    if boost == 0 {
        return Ok(());
    }
    let nice = -(boost.min(20) as i32);
    // SAFETY: setpriority has no memory arguments; on Linux PRIO_PROCESS with who = 0 is the
    // calling thread, and threads spawned later inherit its nice value.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's nice value.
pub fn nice() -> io::Result<i32> {
    // SAFETY: getpriority has no memory arguments; errno is cleared first because -1 is a valid
    // nice value.
    let n = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    let err = io::Error::last_os_error();
    if n == -1 && err.raw_os_error().is_some_and(|e| e != 0) {
        return Err(err);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boost_lowers_the_nice_value_of_the_thread_and_what_it_spawns() {
        // On a thread of its own, so the test runner's threads keep their priority.
        std::thread::spawn(|| {
            let before = nice().unwrap();
            raise_priority(0).unwrap();
            assert_eq!(nice().unwrap(), before, "0 changes nothing");
            match raise_priority(5) {
                Ok(()) => {
                    assert_eq!(nice().unwrap(), -5);
                    assert_eq!(std::thread::spawn(|| nice().unwrap()).join().unwrap(), -5, "inherited");
                }
                // Without CAP_SYS_NICE the kernel refuses, and says so.
                Err(e) => {
                    assert!(!nix::unistd::geteuid().is_root(), "refused as root: {e}");
                    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
                    assert_eq!(nice().unwrap(), before);
                }
            }
        })
        .join()
        .unwrap();
    }
}
