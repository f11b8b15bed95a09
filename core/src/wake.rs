//! Waking the worker's main thread (any thread), which sleeps on its latch.

#![warn(missing_docs)]

/// Wakes the main thread. A process-directed SIGUSR1 reaches the only
/// thread that does not block signals (the main thread), where Postgres'
/// own handler sets the latch.
pub fn wake_main_thread() {
    // SAFETY: kill(2) on our own pid is async-signal-safe and touches no Postgres state.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR1);
    }
}
