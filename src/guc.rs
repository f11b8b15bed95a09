//! Settings (GUCs; postmaster, backends and the worker's main thread). Read
//! only on Postgres threads.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::netpolicy::{self, NetworkPolicy};

/// `eventeum.database`: the database whose `eventeum` schema the worker serves.
pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// `eventeum.bytes_to_ascii`: render bytesN values as ASCII text (Eventeum's bytesToAscii).
pub static BYTES_TO_ASCII: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `eventeum.outbox_retention`: seconds delivered outbox rows are kept.
pub static OUTBOX_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(86_400);

/// `eventeum.metrics_address`: host:port of the worker's metrics endpoint; empty is off.
pub static METRICS_ADDRESS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// `eventeum.environment`: the `environment` label of Eventeum's node gauges.
pub static ENVIRONMENT: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"default"));

/// `eventeum.allowed_hosts`: where nodes and brokers may live (see `netpolicy`).
pub static ALLOWED_HOSTS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public, private, loopback"));

/// Registers the settings. `eventeum.database` is a postmaster setting, which
/// Postgres only accepts while loading shared_preload_libraries.
pub fn register(preloading: bool) {
    if preloading {
        define_database();
    }
    define_outbox_retention();
    define_metrics();
    define_allowed_hosts();
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

fn define_metrics() {
    GucRegistry::define_string_guc(
        c"eventeum.metrics_address",
        c"host:port where the worker serves Prometheus metrics and health; empty is off.",
        c"For example 127.0.0.1:9187. Paths: /metrics and /monitoring/health. Applies on reload.",
        &METRICS_ADDRESS,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"eventeum.environment",
        c"The environment label of Eventeum's per-node gauges.",
        c"Eventeum labelled its metrics with application=\"Eventeum\" and the environment it ran in.",
        &ENVIRONMENT,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

fn define_allowed_hosts() {
    // SIGHUP: only postgresql.conf or ALTER SYSTEM (a superuser) sets it; no
    // session can widen it for itself.
    GucRegistry::define_string_guc(
        c"eventeum.allowed_hosts",
        c"Where node URLs and brokers may point: address classes, networks and host names.",
        c"Comma-separated: public, private, loopback, link-local, CIDR networks or addresses, host names (*.example.com for subdomains). Applies on reload.",
        &ALLOWED_HOSTS,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// `eventeum.allowed_hosts`, parsed; a value that does not parse allows
/// nothing, and says why.
pub fn network_policy() -> Result<NetworkPolicy, String> {
    let text = ALLOWED_HOSTS
        .get()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_default();
    NetworkPolicy::parse(&text).map_err(|e| format!("{}: {e}", netpolicy::SETTING))
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

/// `eventeum.database` when this server runs the worker (the library is
/// preloaded, so the setting exists), else None.
pub fn served_database() -> Option<String> {
    crate::worker_registered().then(database)
}

pub fn database() -> String {
    DATABASE
        .get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres".to_string())
}

/// `eventeum.metrics_address`, or None when it is empty.
pub fn metrics_address() -> Option<String> {
    METRICS_ADDRESS
        .get()
        .and_then(|s| s.into_string().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
