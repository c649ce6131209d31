//! The event contract (SPEC §5), defined once: the envelope every event
//! travels in ([`envelope`]), the versioned payload of each event type,
//! grouped in families tagged by `type` ([`loan`], [`account`], [`job`]),
//! the inbound messages ([`inbound`]), the outbox row an event is written
//! as ([`outbox`]) and the JSON Schema of each ([`schema`]). Producers
//! build these types; the audit, notification and inbound consumers
//! deserialize them. This module imports nothing else of the crate.

pub mod account;
pub mod envelope;
pub mod inbound;
pub mod job;
pub mod loan;
pub mod ops;
pub mod outbox;
pub mod schema;
#[cfg(test)]
mod tests;

pub use envelope::{EVENT_SUBJECT_PREFIX, Envelope, Payload, Untyped};
