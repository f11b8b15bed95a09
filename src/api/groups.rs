//! Who may consume a consumer group (backends): `poll` and `ack` run as the
//! extension's owner, so they first ask whether the role that called them
//! may take and acknowledge that group's messages.

use pgrx::prelude::{pg_extern, pg_sys, Spi};

use super::raise;
use crate::error::ApiError;

/// Raises 42501 unless the calling role is an `eventeum_admin` or a member
/// of a role the group was granted to (`grant_consumer_group`).
#[pg_extern(volatile)]
pub(super) fn require_consumer(group: &str) {
    // Inside a SECURITY DEFINER function the current user is the owner; the
    // outer user is the role the session runs as (after SET ROLE), which is
    // the one that called poll or ack.
    // SAFETY: reads a backend global; Postgres sets it before any query runs.
    let caller = unsafe { pg_sys::GetOuterUserId() };
    let allowed = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_has_role($1, 'eventeum_admin', 'MEMBER')
             OR EXISTS (SELECT 1 FROM eventeum.consumer_group_grants g
                          JOIN pg_catalog.pg_roles r ON r.rolname = g.role_name
                         WHERE g.group_name = $2 AND pg_catalog.pg_has_role($1, r.oid, 'MEMBER'))",
        &[caller.into(), group.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
    .unwrap_or(false);
    if !allowed {
        let role = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.pg_get_userbyid($1)::text",
            &[caller.into()],
        )
        .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
        .unwrap_or_default();
        raise(ApiError::Forbidden {
            message: format!("role \"{role}\" may not consume from consumer group \"{group}\""),
            hint: Some(format!(
                "an eventeum_admin grants it: SELECT eventeum.grant_consumer_group('{group}', '{role}')"
            )),
        });
    }
}
