//! A send thread for the TAP -> underlay direction (`[underlay] workers = 2`).
//!
//! Why this shape. On the 2-core machine the project is measured on, the daemon thread's time
//! goes mostly to system calls, not to its own code: a `sendmsg` with `UDP_SEGMENT` over veth runs
//! the UDP/IP stack, the kernel's copy and segmentation and, on the same core, the receiving side's
//! softirq; a TAP write runs the container's TCP receive. The switch core (learning, forwarding,
//! ESP sequence numbers) is a small part. So the second core is put to work on the sends, and the
//! switch keeps exactly one owner:
//!
//! - the daemon thread reads a batch from the TAP, splits super-frames, hands every frame to the
//!   switch (which encapsulates, and on encrypted networks seals, in place, taking sequence
//!   numbers in order from the one ESP state as before) and fills a [`Batch`];
//! - the full batch goes to this thread through a channel, and the daemon thread carries on with
//!   the next batch (or the underlay -> TAP direction) in a second set of buffers;
//! - this thread sends each batch exactly as the daemon thread would (`UDP_SEGMENT` runs,
//!   `sendmmsg`), then hands the buffers back.
//!
//! Order: one thread, one FIFO channel, batches sent whole and in the order they were filled, so
//! every flow leaves in the order its frames were read. Sharding the switch by TAP queue
//! (`IFF_MULTI_QUEUE`, one reader per queue) was not chosen: it needs the FDB, the ARP/ND tables
//! and the ESP state split or shared between threads, and the sans-IO core driven from several
//! threads, which the simulator could then no longer replay; the byte work it would spread is
//! the same system calls this thread takes over. ESP nonces: a datagram is sealed once, on the
//! daemon thread, with a sequence number the durable reservation covers; this thread hands it
//! to the kernel at most once (the single resend after a whole-send `EIO`/`EINVAL` is unchanged).
//! Nothing is shared between the threads but the batches that move through the channels.
//!
//! Small batches (fewer than 8 datagrams: a ping, an ACK, a request) are sent on the daemon
//! thread when nothing is in flight with this thread, so they cannot overtake anything and pay
//! no thread wake-up.
//!
//! Measured (2 vCPUs shared with other load, two-host lab, iperf3 5 s, 5 interleaved pairs,
//! medians, `workers` 1 -> 2, Gbit/s): VXLAN 4 streams 5.27 -> 6.10 (5 of 5 pairs faster),
//! 1 stream 5.71 -> 6.40; ESP 4 streams 5.32 -> 5.52, 1 stream 4.43 -> 4.76; daemon CPU per GB
//! 20-50% higher. One-second `vxswitch bench --quick` runs on the same machine could not tell
//! the two apart (their spread is larger than the difference). Hence the default of 2.
//!
//! Backpressure: a fixed number of batches exist; when all are with this thread, the daemon
//! thread waits for one to come back (the kernel is slower than the reader, so waiting is the
//! right thing to do and bounds memory).

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// A thread that runs `job` on each batch it is given, in order, and gives it back.
#[derive(Debug)]
pub struct Worker<B: Send + 'static> {
    to: Option<SyncSender<B>>,
    back: Receiver<B>,
    thread: Option<JoinHandle<()>>,
    /// Batches with the thread (submitted, not yet taken back).
    in_flight: usize,
}

impl<B: Send + 'static> Worker<B> {
    /// Start the thread `name`, which runs `job` on every batch.
    pub fn spawn(name: &str, mut job: impl FnMut(&mut B) + Send + 'static) -> std::io::Result<Self> {
        let (to, rx) = mpsc::sync_channel::<B>(64);
        let (done, back) = mpsc::channel::<B>();
        let thread = std::thread::Builder::new().name(name.to_string()).spawn(move || {
            while let Ok(mut batch) = rx.recv() {
                job(&mut batch);
                if done.send(batch).is_err() {
                    break;
                }
            }
        })?;
        Ok(Worker { to: Some(to), back, thread: Some(thread), in_flight: 0 })
    }

    /// Hand `batch` to the thread; it is worked on after every batch submitted before it.
    pub fn submit(&mut self, batch: B) {
        if let Some(to) = &self.to {
            // The thread only ends when `to` is dropped (or it panicked: then the batch is lost
            // and `take` will not wait for it).
            if to.send(batch).is_ok() {
                self.in_flight += 1;
            }
        }
    }

    /// A batch the thread has finished, waiting for one if `wait` and one is still in flight.
    pub fn take(&mut self, wait: bool) -> Option<B> {
        if self.in_flight == 0 {
            return None;
        }
        let got = if wait {
            self.back.recv().ok()
        } else {
            match self.back.try_recv() {
                Ok(b) => Some(b),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            }
        };
        match got {
            Some(b) => {
                self.in_flight -= 1;
                Some(b)
            }
            None => {
                // The thread is gone (it panicked): nothing more will come back.
                self.in_flight = 0;
                None
            }
        }
    }

    /// Batches with the thread.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl<B: Send + 'static> Drop for Worker<B> {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has sent what it holds.
        self.to = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn batches_are_worked_on_in_order_and_all_come_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let mut w = Worker::spawn("test-worker", move |b: &mut Vec<u32>| {
            log.lock().unwrap().extend_from_slice(b);
            b.clear();
        })
        .unwrap();
        let mut pool: Vec<Vec<u32>> = (0..3).map(|_| Vec::new()).collect();
        let mut next = 0u32;
        for round in 0..200 {
            let mut b = pool.pop().or_else(|| w.take(true)).expect("a batch is free or comes back");
            assert!(b.is_empty(), "a batch comes back emptied");
            for _ in 0..(round % 7 + 1) {
                b.push(next);
                next += 1;
            }
            w.submit(b);
            assert!(w.in_flight() <= 3);
        }
        while let Some(b) = w.take(true) {
            pool.push(b);
        }
        assert_eq!(pool.len(), 3, "every batch came back");
        assert_eq!(w.in_flight(), 0);
        assert_eq!(*seen.lock().unwrap(), (0..next).collect::<Vec<_>>(), "in submission order, none lost or repeated");
    }

    #[test]
    fn take_without_waiting_never_blocks_and_nothing_in_flight_gives_none() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let g = Arc::clone(&gate);
        let mut w = Worker::spawn("test-worker", move |_: &mut u8| drop(g.lock().unwrap())).unwrap();
        assert!(w.take(true).is_none(), "nothing in flight: no wait");
        w.submit(1);
        assert!(w.take(false).is_none(), "still being worked on");
        drop(held);
        assert_eq!(w.take(true), Some(1));
        assert!(w.take(false).is_none());
    }

    #[test]
    fn a_thread_that_died_is_not_waited_for() {
        let mut w = Worker::spawn("test-worker", |_: &mut u8| panic!("job failed")).unwrap();
        w.submit(1);
        assert_eq!(w.take(true), None);
        assert_eq!(w.in_flight(), 0);
        w.submit(2);
        assert_eq!(w.take(true), None);
    }
}
