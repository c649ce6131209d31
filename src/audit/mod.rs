//! The audit trail: one append-only, hash-chained entry per event.
//!
//! `entry` holds what an entry is and how its hash is computed, `store` the
//! SQL (append under the chain lock, filtered pages, the verification walk),
//! `consumer` the durable bus consumer that feeds it.

pub mod consumer;
pub mod entry;
pub mod store;

pub use entry::{AuditEntry, NewEntry};
