//! Makes every Rust panic visible in the server log (any thread).
//!
//! pgrx turns a panic on the main thread into an ERROR whose text is only the
//! panic's message, so a bug looks like any other error. This hook, around
//! pgrx's own, writes `eventeum: panicked at <file:line>: <message>` to the
//! server log first; the end-to-end suite fails on that line. Errors raised
//! on purpose (`pgrx::error!`, Postgres ERRORs crossing the FFI boundary) are
//! panics with pgrx's own payloads, and are left alone.

use std::io::Write;

/// Installs the hook. Call once, from `_PG_init`, after pgrx installed its own.
pub fn install() {
    let pgrx_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        // pgrx already prints panics off the main thread (tokio's) itself.
        if let (Some(message), true) = (message, on_main_thread()) {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            // stderr is the server log; a failed write has nowhere better to go.
            let _ = writeln!(
                std::io::stderr(),
                "eventeum: panicked at {location}: {message}"
            );
        }
        pgrx_hook(info)
    }));
}

/// Whether this is the process's main thread, the one Postgres runs on.
fn on_main_thread() -> bool {
    // SAFETY: gettid and getpid have no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) == libc::getpid() as libc::c_long }
}
