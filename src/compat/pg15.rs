//! PostgreSQL 15: permissions live in the range table entry.

use pgrx::pg_sys;

/// Asks for INSERT on the relation `item` added to `parse_state` and checks
/// it, raising 42501 as COPY FROM would.
///
/// # Safety
/// Main thread, in a transaction; `item` was returned by
/// `addRangeTableEntryForRelation` for `parse_state`.
pub unsafe fn check_insert_permission(
    parse_state: *mut pg_sys::ParseState,
    item: *mut pg_sys::ParseNamespaceItem,
) {
    // SAFETY: both pointers are live parser structures, as the caller promises.
    unsafe {
        (*(*item).p_rte).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        pg_sys::ExecCheckRTPerms((*parse_state).p_rtable, true);
    }
}
