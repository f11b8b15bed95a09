//! The worker's tokio runtime: built with every signal blocked on its
//! threads, and stopped with a grace period (main thread).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::ConfigSnapshot;
use crate::limits::SHUTDOWN_GRACE;

/// A runtime of one I/O thread (plus tokio's blocking pool, for name
/// lookups) whose threads block every signal, so that Postgres' signal
/// handlers only ever run on the main thread.
///
/// One thread, because the main thread (Postgres) is the pipeline's narrow
/// stage: a backfill's fetching, decoding and row building take about two
/// thirds of the main thread's time. A second thread bought no speed, and as
/// a follower moved between the two, each thread's glibc arena grew to its
/// working set: the worker's peak private memory in a 100,000-event backfill
/// was 87-93 MB with two threads and 38 MB with one.
pub(super) fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Two arenas besides the main one (the tokio thread's, and one for the
    // blocking pool and librdkafka's threads): fewer heaps to keep freed
    // memory in (glibc's default is 8 per core).
    // SAFETY: mallopt only sets a glibc tunable, before the threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 3);
    }
    // SAFETY: sigset_t is a plain C bit set; all zeroes is a valid (empty) set.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain libc signal-mask calls on this thread; threads spawned meanwhile inherit the full mask.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("eventeum-io")
        .enable_all()
        .build();
    // SAFETY: restores this thread's own mask, saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    runtime
}

pub(super) fn shutdown(
    runtime: tokio::runtime::Runtime,
    config_tx: watch::Sender<Arc<ConfigSnapshot>>,
) {
    drop(config_tx); // the supervisor sees the sender gone and stops the followers
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}
