//! A subtransaction (main thread): work whose ERROR (a lock timeout, say)
//! should roll back only itself, as a PL/pgSQL `EXCEPTION` block does,
//! instead of the worker's transaction and so the worker.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Runs `work` in a subtransaction: committed into the caller's transaction
/// when it returns, rolled back when it raises an ERROR, which comes back
/// as `Err` with its message.
pub fn in_subtransaction<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    // SAFETY: called on the main thread inside a transaction. As PL/Python
    // does, the subtransaction is released or rolled back on every path,
    // and the caller's memory context and resource owner are put back.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        PgTryBuilder::new(AssertUnwindSafe(|| {
            let value = work();
            pg_sys::ReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            Ok(value)
        }))
        .catch_others(|error| {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
            Err(match error {
                CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
                    report.message().to_string()
                }
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            })
        })
        .execute()
    }
}
