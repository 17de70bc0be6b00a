//! Runs a kernel programmer on a thread of its own, so the daemon's loop never waits for it.
//!
//! Service VIPs are programmed with `nft` (a process per change, several milliseconds) and
//! conntrack flushes. Done inline, every change of a service's live backends would stall the data
//! path for that long, and a burst arriving meanwhile would overflow the socket and TAP queues.
//! The daemon therefore only *sends* each decision of the node down a channel; the programmer's
//! thread carries them out in order, and publishes its counters after each one for
//! `stats`/`/metrics` to read without waiting. Stopping closes the channel, lets the thread
//! finish what is queued, runs the programmer's clean stop and joins it: a clean stop still leaves
//! nothing behind.
//!
//! Floating IPs do not use it: their release must be complete in the kernel before gossip
//! announces it (see [`super::floating`]), which an asynchronous programmer cannot promise.

use std::io;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A kernel programmer driven by decisions of the node.
pub trait Programmer: Send + 'static {
    /// One decision to carry out.
    type Action: Send + 'static;
    /// What the daemon may read at any time (counters).
    type View: Copy + Default + Send + 'static;
    /// Carry out one decision.
    fn apply(&mut self, action: Self::Action);
    /// The current view.
    fn view(&self) -> Self::View;
    /// Clean stop: remove everything programmed.
    fn shutdown(self);
}

/// A [`Programmer`] running on its own thread.
#[derive(Debug)]
pub struct Offthread<P: Programmer> {
    tx: Option<Sender<P::Action>>,
    view: Arc<Mutex<P::View>>,
    thread: Option<JoinHandle<()>>,
}

impl<P: Programmer> Offthread<P> {
    /// Start `programmer` (already reconciled) on a thread named `name`.
    pub fn spawn(name: &str, programmer: P) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<P::Action>();
        let view = Arc::new(Mutex::new(programmer.view()));
        let published = Arc::clone(&view);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            let mut programmer = programmer;
            for action in rx {
                programmer.apply(action);
                let now = programmer.view();
                *published.lock().unwrap_or_else(|e| e.into_inner()) = now;
            }
            programmer.shutdown();
        })?;
        Ok(Offthread { tx: Some(tx), view, thread: Some(thread) })
    }

    /// Queue one decision (never waits).
    pub fn apply(&mut self, action: P::Action) {
        if let Some(tx) = &self.tx {
            if tx.send(action).is_err() {
                tracing::error!("kernel programmer thread is gone; a decision was not carried out");
            }
        }
    }

    /// The view published after the last decision carried out.
    pub fn view(&self) -> P::View {
        *self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carry out what is queued, run the programmer's clean stop and wait for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("kernel programmer thread panicked during its clean stop");
            }
        }
    }
}

impl<P: Programmer> Drop for Offthread<P> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    use super::*;

    /// Records what it was asked, in order, and can be made slow.
    struct Recorder {
        done: Arc<Mutex<Vec<u32>>>,
        count: u64,
        gate: Option<Receiver<()>>,
    }

    impl Programmer for Recorder {
        type Action = u32;
        type View = u64;
        fn apply(&mut self, action: u32) {
            if let Some(gate) = &self.gate {
                let _ = gate.recv_timeout(Duration::from_secs(10));
            }
            self.done.lock().unwrap().push(action);
            self.count += 1;
        }
        fn view(&self) -> u64 {
            self.count
        }
        fn shutdown(self) {
            self.done.lock().unwrap().push(u32::MAX);
        }
    }

    #[test]
    fn decisions_run_in_order_and_the_clean_stop_runs_after_the_queue() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut w = Offthread::spawn("test-programmer", Recorder { done: Arc::clone(&done), count: 0, gate: None }).unwrap();
        for a in 0..100 {
            w.apply(a);
        }
        w.shutdown();
        let done = done.lock().unwrap();
        assert_eq!(done.len(), 101);
        assert!(done[..100].iter().copied().eq(0..100), "in order");
        assert_eq!(done[100], u32::MAX, "clean stop last");
    }

    #[test]
    fn apply_does_not_wait_for_a_slow_programmer() {
        let (open, gate) = mpsc::channel();
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut w = Offthread::spawn("test-programmer", Recorder { done: Arc::clone(&done), count: 0, gate: Some(gate) }).unwrap();
        for a in 0..3 {
            w.apply(a);
        }
        // Nothing could run yet (the gate is shut), and yet every apply returned.
        assert_eq!(w.view(), 0);
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        let start = std::time::Instant::now();
        while w.view() < 3 {
            assert!(start.elapsed() < Duration::from_secs(10), "the programmer never caught up");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(w);
        assert_eq!(done.lock().unwrap().as_slice(), &[0, 1, 2, u32::MAX], "drop also runs the clean stop");
    }
}
