//! Bulk rows through Postgres' own COPY FROM, fed from memory (store; main
//! thread).
//!
//! A backfill piece of 10,000 events written with `INSERT ... SELECT FROM
//! unnest(...)` costs nearly twice what COPY does: fifteen arrays are built,
//! copied into the plan as constants, unnested into a tuplestore and inserted
//! a row at a time. COPY reads the rows straight from a buffer and writes
//! them a page at a time (`heap_multi_insert`). It runs in the caller's
//! transaction, fires the table's triggers, and raises on the first bad row
//! like any statement. It cannot resolve conflicts, so only rows known to be
//! new come this way.

use std::cell::RefCell;
use std::ffi::{c_int, c_void, CString};
use std::ptr;

use pgrx::pg_sys;
use pgrx::prelude::pg_guard;

use crate::discard::discard;

thread_local! {
    /// The data COPY is reading, and how far it got. Only the main thread
    /// runs COPY, one at a time.
    static SOURCE: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// COPYs `rows`, in COPY's binary format, into `columns` of `<schema>.<table>`,
/// in the current transaction. Returns how many rows were written.
///
/// Text fields pass through the worker's client encoding, which the worker
/// sets to UTF-8 at start: COPY converts them as it would a client's.
///
/// Main thread only, inside a transaction.
pub fn copy_in(schema: &str, table: &str, columns: &[String], rows: Vec<u8>) -> u64 {
    let schema = CString::new(schema).expect("schema names have no NUL");
    let table = CString::new(table).expect("table names have no NUL");
    SOURCE.with_borrow_mut(|source| *source = (rows, 0));
    let written = unsafe {
        // SAFETY: main thread, in a transaction: what COPY FROM STDIN does
        // in a backend, with our callback standing in for the client. Every
        // pg_sys call is guarded: an ERROR unwinds as a Rust panic, and
        // aborting the transaction closes the relation and frees the rest.
        // Opened by name here, as COPY does, rather than looked up in a query first.
        let target = pg_sys::makeRangeVar(
            pg_sys::pstrdup(schema.as_ptr()),
            pg_sys::pstrdup(table.as_ptr()),
            -1,
        );
        let relation = pg_sys::table_openrv(target, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        let mut names: *mut pg_sys::List = ptr::null_mut();
        for column in columns {
            let name = CString::new(column.as_str()).expect("column names have no NUL");
            names = pg_sys::lappend(
                names,
                pg_sys::makeString(pg_sys::pstrdup(name.as_ptr())).cast(),
            );
        }
        let binary = pg_sys::makeDefElem(
            pg_sys::pstrdup(c"format".as_ptr()),
            pg_sys::makeString(pg_sys::pstrdup(c"binary".as_ptr())).cast(),
            -1,
        );
        let options = pg_sys::lappend(ptr::null_mut(), binary.cast());
        let parse_state = pg_sys::make_parsestate(ptr::null_mut());
        // COPY finds its target in the range table, as DoCopy sets it up.
        let item = pg_sys::addRangeTableEntryForRelation(
            parse_state,
            relation,
            pg_sys::RowExclusiveLock as c_int,
            ptr::null_mut(),
            false,
            false,
        );
        crate::compat::check_insert_permission(parse_state, item);
        // Index and constraint checks, and any trigger, see the transaction's snapshot.
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        let copy = pg_sys::BeginCopyFrom(
            parse_state,
            relation,
            ptr::null_mut(),
            ptr::null(),
            false,
            Some(read_source),
            names,
            options,
        );
        let written = pg_sys::CopyFrom(copy);
        pg_sys::EndCopyFrom(copy);
        pg_sys::PopActiveSnapshot();
        pg_sys::free_parsestate(parse_state);
        // Keep the lock to the end of the transaction, as COPY does.
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        // Later statements of this transaction see the rows.
        pg_sys::CommandCounterIncrement();
        written
    };
    discard(SOURCE.take().0);
    written
}

/// COPY's data source: hands out the buffer, up to `maxread` bytes at a
/// time; 0 means the end.
#[pg_guard]
unsafe extern "C-unwind" fn read_source(
    outbuf: *mut c_void,
    _minread: c_int,
    maxread: c_int,
) -> c_int {
    SOURCE.with_borrow_mut(|(buffer, read)| {
        let n = (buffer.len() - *read).min(maxread.max(0) as usize);
        // SAFETY: COPY hands us `maxread` writable bytes at `outbuf`.
        unsafe { ptr::copy_nonoverlapping(buffer.as_ptr().add(*read), outbuf.cast::<u8>(), n) };
        *read += n;
        n as c_int
    })
}
