//! The index builder: a background worker of its own (`eventeum index
//! builder`) that makes the indexes typed views ask for while the worker
//! goes on inserting. On a partitioned kind table it makes the index on the
//! table alone (`ON ONLY`: no rows read), then builds each partition's
//! concurrently and attaches it; the last attach makes the index valid. A
//! concurrent build never makes inserts wait; only the two catalog steps
//! take a lock they wait for, each for a moment, under a short
//! `lock_timeout` and tried again.
//!
//! It is crash-only: a kill leaves at most one partition's index invalid,
//! which the next pass drops and builds again. See docs/ARCHITECTURE.md,
//! "Index builds that never stop ingestion".

mod catalog;
mod toplevel;

use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::{pg_guard, pg_sys, Spi};
use pgrx::spi::SpiError;

use self::toplevel::{run_top_level, StatementError};
use crate::guc;
use crate::states::IndexState;
use crate::store;
use crate::view::ViewIndex;

/// How often the builder looks at the configuration's version.
const POLL: Duration = Duration::from_secs(1);
/// A failed build is tried again this long after, or at the next change.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);
/// The longest the two catalog steps wait for their lock in one try: an
/// insert queued behind them waits at most this long.
const CATALOG_LOCK_TIMEOUT: &str = "200ms";
/// Tries of a catalog step before the build is recorded as FAILED.
const CATALOG_LOCK_TRIES: u32 = 600;
/// The pause between two tries.
const CATALOG_LOCK_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Spi(#[from] SpiError),
    #[error(
        "the index of partition {0} is still not attached after ALTER INDEX … ATTACH PARTITION"
    )]
    NotAttached(String),
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn eventeum_index_builder_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // A build runs inside the server's own code for as long as the table is
    // large: SIGTERM ends it at its next interrupt check, as it ends a
    // backend's query, and the next start resumes it.
    // SAFETY: main thread, before any transaction.
    unsafe { crate::compat::die_on_sigterm() };
    let database = guc::database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    if crate::worker::wait_for_extension() {
        run();
    }
    // Exit non-zero so that the postmaster starts us again (after the
    // extension is dropped, we wait for it once more).
    // SAFETY: the builder's own exit, on its main thread, outside any
    // transaction; proc_exit runs Postgres' exit callbacks and does not return.
    unsafe { pg_sys::proc_exit(1) };
}

/// Returns when the extension is dropped.
fn run() {
    // A concurrent build waits for every older transaction, as long as it
    // lasts: no statement or lock timeout of its own (SIGTERM still ends it).
    in_transaction(|| Spi::run("SET statement_timeout = 0; SET lock_timeout = 0"));
    let mut seen = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: main thread, between transactions, as Postgres' own
            // processes do on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            seen = None; // bytes_to_ascii may have moved filters to another table
        }
        let Some(version) = in_transaction(store::config_version) else {
            return;
        };
        if seen != Some(version) || retry_at.is_some_and(|at| Instant::now() >= at) {
            seen = Some(version);
            retry_at = build_all().then(|| Instant::now() + RETRY_FAILED_AFTER);
        }
        wait(POLL);
    }
}

/// Builds every index a view asks for that is not ready; true when one failed.
fn build_all() -> bool {
    let wanted = in_transaction(|| {
        let snapshot = store::load_snapshot(guc::BYTES_TO_ASCII.get())?;
        let wanted = store::view_indexes(&snapshot);
        catalog::list(&wanted)?;
        Ok(wanted)
    });
    let mut failed = false;
    for index in &wanted {
        if let Err(e) = build(index) {
            failed = true;
            pgrx::warning!(
                "eventeum: cannot build index {} of view {}: {e}",
                index.name,
                index.view
            );
            let error = e.to_string();
            in_transaction(|| catalog::record(index, IndexState::Failed, 0, 0, Some(&error)));
        }
    }
    failed
}

fn build(index: &ViewIndex) -> Result<(), BuildError> {
    let Some(built) = in_transaction(|| catalog::built(index)) else {
        return Ok(()); // no kind table yet: its first filter's trigger makes it
    };
    if built.valid == Some(true) && built.missing.is_empty() {
        return record(index, IndexState::Ready, built.partitions, built.partitions);
    }
    let done = built.partitions - built.missing.len() as i64;
    record(index, IndexState::Building, done, built.partitions)?;
    if !built.partitioned {
        // A plain table (a subscriber's): one concurrent build, after
        // dropping what an interrupted one left.
        if built.valid == Some(false) {
            run_waiting_for_locks(&index.drop_on_table_sql())?;
        }
        run_top_level(&index.create_on_table_sql(false))?;
        return record(index, IndexState::Ready, 0, 0);
    }
    if built.valid.is_none() {
        run_waiting_for_locks(&index.create_on_table_sql(true))?;
    }
    let mut last: Option<String> = None;
    loop {
        let Some(built) = in_transaction(|| catalog::built(index)) else {
            return Ok(()); // the kind table went meanwhile
        };
        let done = built.partitions - built.missing.len() as i64;
        let Some(partition) = built.missing.into_iter().next() else {
            return record(index, IndexState::Ready, done, built.partitions);
        };
        if last.as_ref() == Some(&partition) {
            return Err(BuildError::NotAttached(partition));
        }
        record(index, IndexState::Building, done, built.partitions)?;
        let child = index.partition_index_name(&partition);
        match in_transaction(|| catalog::index_validity(&child)) {
            Some(true) => {} // built before a crash, not attached yet
            Some(false) => {
                run_waiting_for_locks(&index.drop_on_partition_sql(&partition))?;
                run_top_level(&index.create_on_partition_sql(&partition))?;
            }
            None => run_top_level(&index.create_on_partition_sql(&partition))?,
        }
        run_waiting_for_locks(&index.attach_sql(&partition))?;
        last = Some(partition);
    }
}

fn record(index: &ViewIndex, state: IndexState, done: i64, total: i64) -> Result<(), BuildError> {
    Ok(BackgroundWorker::transaction(|| {
        catalog::record(index, state, done, total, None)
    })?)
}

/// Runs a statement that takes a lock the worker's inserts wait for (the
/// kind table's for `ON ONLY`, a partition index's for `ATTACH`): each try
/// waits at most [`CATALOG_LOCK_TIMEOUT`] for it, so an insert queued behind
/// it waits no longer; a step in progress only delays the next try.
fn run_waiting_for_locks(sql: &str) -> Result<(), StatementError> {
    let mut tries = 0;
    loop {
        set_lock_timeout(CATALOG_LOCK_TIMEOUT);
        let result = run_top_level(sql);
        set_lock_timeout("0");
        match result {
            Err(e) if e.is_lock_wait() && tries < CATALOG_LOCK_TRIES => {
                tries += 1;
                wait(CATALOG_LOCK_PAUSE);
            }
            other => return other,
        }
    }
}

fn set_lock_timeout(value: &str) {
    in_transaction(|| Spi::run(&format!("SET lock_timeout = '{value}'")));
}

/// Runs `work` in a transaction of its own. An error raises an ERROR,
/// which ends the builder; the postmaster starts it again and it resumes.
fn in_transaction<T>(work: impl FnOnce() -> Result<T, SpiError>) -> T {
    crate::worker::commit_or_abort(|| "the index builder cannot use its catalog".into(), work)
}

/// Sleeps up to `timeout`, or until the latch is set; SIGTERM (with `die`
/// installed) ends the process here.
fn wait(timeout: Duration) {
    BackgroundWorker::wait_latch(Some(timeout));
    pg_sys::check_for_interrupts!();
}
