//! eventeum-core: everything of eventeum that runs off the worker's main
//! thread (tokio threads) or on any thread, in a crate that cannot depend on
//! pgrx, so that a Postgres call from a tokio thread is a compile error.
//!
//! The pipeline, one module per stage:
//! - [`rpc`]: node JSON-RPC through alloy (tokio);
//! - [`follow`]: one follower per node, merged `eth_getLogs`, forks, backfills (tokio);
//! - [`matcher`]: address sets, and what a filter matches resolved against them (any thread);
//! - [`decode`]: a raw log to Eventeum's typed parameters (any thread);
//! - [`rows`]: decoded logs to the rows, messages and COPY data the store writes (tokio);
//! - [`message`]: Eventeum's message JSON, rendered in one place (any thread);
//! - [`relay`]: outbox batches to Kafka, RabbitMQ and HTTP (tokio);
//! - [`metrics`]: the Prometheus and health endpoint (tokio);
//! - [`config`]: the configuration snapshot the main thread publishes to the followers;
//! - [`protocol`]: every message that crosses between the main thread and tokio.
//!
//! And what the SQL API validates before anything is stored (any thread):
//! [`event`] (event specifications), [`spec`] (filters), [`view`] (typed
//! views), [`node`], [`monitor`], [`broadcast`], [`redact`], [`netpolicy`],
//! [`compact`] (the 20- and 32-byte storage types' text), [`kind`] (event
//! kinds: what storage keeps of an event's parameters)
//! (where nodes and brokers may live), with [`error`] mapping each failure
//! to its SQLSTATE; [`states`] holds the enums for the states and kinds the
//! schema names, [`limits`] every tunable bound, and [`wake`] the signal
//! that wakes the main thread.
//!
//! # Layers
//! A module imports only from its own layer or a lower one, and never round
//! a cycle; `tests/layers.rs` reads the imports and fails otherwise. Lowest first:
//! - L0: [`limits`], [`states`], [`error`], [`redact`], [`netpolicy`], [`discard`], [`wake`]
//! - L1: [`event`], [`node`], [`broadcast`], [`message`], [`compact`]
//! - L2: [`view`], [`kind`]
//! - L3: [`spec`]
//! - L4: [`monitor`], [`matcher`], [`decode`]
//! - L5: [`config`]
//! - L6: [`rows`]
//! - L7: [`protocol`]
//! - L8: [`rpc`]
//! - L9: [`follow`], [`relay`], [`metrics`]

pub mod broadcast;
pub mod compact;
pub mod config;
pub mod decode;
pub mod discard;
pub mod error;
pub mod event;
pub mod follow;
pub mod kind;
pub mod limits;
pub mod matcher;
pub mod message;
pub mod metrics;
pub mod monitor;
pub mod netpolicy;
pub mod node;
pub mod protocol;
pub mod redact;
pub mod relay;
pub mod rows;
pub mod rpc;
pub mod spec;
pub mod states;
pub mod view;
pub mod wake;
