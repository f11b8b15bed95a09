//! Frees the main thread's large leftovers on a tokio thread (called from
//! the main thread, runs on tokio).
//!
//! A backfill piece arrives with about 200,000 small allocations made on the
//! tokio side (rows, messages, their strings). Freed on the main thread they
//! cost it a sixth of its time: glibc takes the lock of the arena that made
//! each one, against the tokio threads still allocating in it. The main
//! thread is the pipeline's serial stage, so it hands them back instead.

#![warn(missing_docs)]

use std::sync::OnceLock;

use tokio::sync::mpsc;

use crate::limits::DISCARD_QUEUE;

type Leftovers = Box<dyn Send>;

static BIN: OnceLock<mpsc::Sender<Leftovers>> = OnceLock::new();

/// Starts the task that frees what [`discard`] is given. Call once, from the
/// worker, with its runtime.
pub fn start(runtime: &tokio::runtime::Runtime) {
    let (bin, mut leftovers) = mpsc::channel::<Leftovers>(DISCARD_QUEUE);
    if BIN.set(bin).is_ok() {
        runtime.spawn(async move {
            while let Some(leftover) = leftovers.recv().await {
                drop(leftover);
            }
        });
    }
}

/// Frees `value` on a tokio thread, or here when none is running or the
/// queue is full. Never blocks.
pub fn discard<T: Send + 'static>(value: T) {
    if let Some(bin) = BIN.get() {
        // try_send hands the value back on failure; it is dropped here then.
        let _ = bin.try_send(Box::new(value));
    }
}
