//! Tests of the supervised loan actor tree through its public API, against an
//! in-memory store fake (the SQL stores have their own conformance suite).

mod batching;
mod lifecycle;
mod ownership;
mod services;
mod supervision;
mod support;
