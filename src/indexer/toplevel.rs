//! One SQL statement run as a client's simple query runs it (main thread):
//! at top level, in a transaction of its own, through a portal. SPI cannot
//! run `CREATE INDEX CONCURRENTLY` (it refuses to run inside a function or
//! a transaction block), and a concurrent build commits and starts
//! transactions of its own on its way, which only a top-level portal
//! survives.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::{PgSqlErrorCode, PgTryBuilder};

/// A statement's ERROR, caught: its SQLSTATE and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StatementError {
    pub code: PgSqlErrorCode,
    pub message: String,
}

impl StatementError {
    /// An error that goes away by itself: a lock not granted in time, or a
    /// deadlock the server broke by cancelling us.
    pub fn is_lock_wait(&self) -> bool {
        matches!(
            self.code,
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
                | PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED
        )
    }
}

/// Runs one utility statement (no parameters, no result rows) at top level,
/// outside any transaction, and commits it. An ERROR aborts its transaction
/// and comes back as `Err`; SIGTERM (with `die` installed) ends the process.
pub fn run_top_level(sql: &str) -> Result<(), StatementError> {
    let text = CString::new(sql).map_err(|e| StatementError {
        code: PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message: e.to_string(),
    })?;
    // SAFETY: main thread, outside any transaction (the builder's loop
    // commits every transaction it starts). The statement's parse and plan
    // trees live in a context of their own under TopMemoryContext, which a
    // concurrent build's own commits leave alone (the server keeps them in
    // MessageContext for the same reason); it is deleted on every path.
    unsafe {
        let context = pg_sys::AllocSetContextCreateInternal(
            pg_sys::TopMemoryContext,
            c"eventeum top-level statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let result = PgTryBuilder::new(|| {
            run_in_portal(&text, context);
            Ok(())
        })
        .catch_others(|error| {
            pg_sys::AbortCurrentTransaction();
            Err(statement_error(error))
        })
        .execute();
        pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        pg_sys::MemoryContextDelete(context);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
        result
    }
}

/// What `exec_simple_query` does for one statement, with no client.
///
/// # Safety
/// Main thread, outside any transaction; `context` outlives the call.
unsafe fn run_in_portal(sql: &CString, context: pg_sys::MemoryContext) {
    // SAFETY: the caller's contract; each call below is what the server's
    // own simple-query path makes, in its order.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, sql.as_ptr());
        let transaction_context = pg_sys::MemoryContextSwitchTo(context);
        let parsed = pg_sys::pg_parse_query(sql.as_ptr());
        if parsed.is_null() || (*parsed).length != 1 {
            pgrx::error!("eventeum: a top-level statement must be exactly one statement");
        }
        let raw = (*(*parsed).elements).ptr_value as *mut pg_sys::RawStmt;
        let tag = pg_sys::CreateCommandTag((*raw).stmt);
        // Utility statements only: their analysis needs no snapshot.
        let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(
            raw,
            sql.as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        let plans = pg_sys::pg_plan_queries(
            queries,
            sql.as_ptr(),
            pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
            std::ptr::null_mut(),
        );
        let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
        (*portal).visible = false;
        pg_sys::PortalDefineQuery(
            portal,
            std::ptr::null(),
            sql.as_ptr(),
            tag,
            plans,
            std::ptr::null_mut(),
        );
        pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
        pg_sys::MemoryContextSwitchTo(transaction_context);
        let receiver = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
        let mut completion = pg_sys::QueryCompletion::default();
        crate::compat::portal_run(portal, receiver, &mut completion);
        pg_sys::PortalDrop(portal, false);
        pg_sys::CommitTransactionCommand();
    }
}

fn statement_error(error: CaughtError) -> StatementError {
    match error {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => StatementError {
            code: report.sql_error_code(),
            message: report.message().to_string(),
        },
        CaughtError::RustPanic { ereport, .. } => StatementError {
            code: ereport.sql_error_code(),
            message: ereport.message().to_string(),
        },
    }
}
