//! Settings (GUCs). Read only on Postgres threads.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `eventeum.database`: the database whose `eventeum` schema the worker serves.
pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// `eventeum.bytes_to_ascii`: render bytesN values as ASCII text (Eventeum's bytesToAscii).
pub static BYTES_TO_ASCII: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `eventeum.outbox_retention`: seconds delivered outbox rows are kept.
pub static OUTBOX_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(86_400);

/// Registers the settings. `eventeum.database` is a postmaster setting, which
/// Postgres only accepts while loading shared_preload_libraries.
pub fn register(preloading: bool) {
    if preloading {
        define_database();
    }
    define_outbox_retention();
    GucRegistry::define_bool_guc(
        c"eventeum.bytes_to_ascii",
        c"Render bytesN event parameters as ASCII text instead of 0x hex.",
        c"Eventeum's bytesToAscii. Applies to events stored after a configuration reload.",
        &BYTES_TO_ASCII,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

fn define_outbox_retention() {
    GucRegistry::define_int_guc(
        c"eventeum.outbox_retention",
        c"Seconds to keep delivered outbox rows before the worker deletes them.",
        c"Undelivered rows are never deleted. Acked consumer-group messages count as delivered.",
        &OUTBOX_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

fn define_database() {
    GucRegistry::define_string_guc(
        c"eventeum.database",
        c"Database whose eventeum schema the background worker serves.",
        c"The worker waits quietly until CREATE EXTENSION eventeum has run there. Needs a restart.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn database() -> String {
    DATABASE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".to_string())
}
