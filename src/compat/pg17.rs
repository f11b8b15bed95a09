//! PostgreSQL 17 and 18: permissions live in RTEPermissionInfo (since 16).

use std::ptr;

use pgrx::pg_sys;

/// Asks for INSERT on the relation `item` added to `parse_state` and checks
/// it, raising 42501 as COPY FROM would (DoCopy's own steps since 16).
///
/// # Safety
/// Main thread, in a transaction; `item` was returned by
/// `addRangeTableEntryForRelation` for `parse_state`.
pub unsafe fn check_insert_permission(
    parse_state: *mut pg_sys::ParseState,
    item: *mut pg_sys::ParseNamespaceItem,
) {
    // SAFETY: both pointers are live parser structures, as the caller
    // promises; the one-element list is palloc'd in the current context.
    unsafe {
        let permissions = (*item).p_perminfo;
        (*permissions).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        let list = pg_sys::lappend(ptr::null_mut(), permissions.cast());
        pg_sys::ExecCheckPermissions((*parse_state).p_rtable, list, true);
    }
}
