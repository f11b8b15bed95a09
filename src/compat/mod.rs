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
