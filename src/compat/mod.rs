//! What differs between the PostgreSQL versions eventeum builds for (main
//! thread): one module per version family behind the same functions, so
//! the rest of the code does not branch on versions. Cargo features pick
//! the version (`pg15`, the default, `pg17`, `pg18`).

#[cfg(feature = "pg15")]
mod pg15;
#[cfg(feature = "pg15")]
pub use pg15::check_insert_permission;

// 16 moved a relation's permissions out of the range table entry into
// RTEPermissionInfo; 17 and 18 keep that.
#[cfg(any(feature = "pg17", feature = "pg18"))]
mod pg17;
#[cfg(any(feature = "pg17", feature = "pg18"))]
pub use pg17::check_insert_permission;

unsafe extern "C-unwind" {
    /// The server's own SIGTERM handler (pgrx's `pg_sys::die` is a guarded
    /// Rust wrapper, not a function a signal can call).
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
}

/// Makes SIGTERM end the process as it ends a backend: `die` sets
/// ProcDiePending, which the next interrupt check acts on. Undone by
/// `BackgroundWorker::attach_signal_handlers`.
///
/// # Safety
/// Main thread.
pub unsafe fn die_on_sigterm() {
    // SAFETY: the caller's contract; `die` is what backends install.
    unsafe { set_sigterm_handler(Some(postgres_die)) }
}

/// Installs `handler` for SIGTERM. 18 renamed the backend's `pqsignal` and
/// made it return nothing.
///
/// # Safety
/// Main thread; `handler` must be a signal handler Postgres' own processes use.
unsafe fn set_sigterm_handler(handler: pgrx::pg_sys::pqsigfunc) {
    // SAFETY: the caller's contract; pqsignal only installs the handler.
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::pqsignal(libc::SIGTERM, handler);
    }
    // SAFETY: as above.
    #[cfg(feature = "pg18")]
    unsafe {
        pgrx::pg_sys::pqsignal_be(libc::SIGTERM, handler);
    }
}

/// Runs `portal` to its end at top level, its rows (if any) to `dest`.
/// 18 dropped `PortalRun`'s `run_once` (every caller passed true).
///
/// # Safety
/// Main thread, inside the portal's transaction; `portal` is started.
pub unsafe fn portal_run(
    portal: pgrx::pg_sys::Portal,
    dest: *mut pgrx::pg_sys::DestReceiver,
    completion: *mut pgrx::pg_sys::QueryCompletion,
) {
    const FETCH_ALL: std::ffi::c_long = std::ffi::c_long::MAX;
    // SAFETY: the caller's contract.
    #[cfg(not(feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::PortalRun(portal, FETCH_ALL, true, true, dest, dest, completion);
    }
    // SAFETY: as above.
    #[cfg(feature = "pg18")]
    unsafe {
        pgrx::pg_sys::PortalRun(portal, FETCH_ALL, true, dest, dest, completion);
    }
}
