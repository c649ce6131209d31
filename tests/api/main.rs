//! The one integration-test binary: every test goes through real HTTP or the
//! real stores. Set `TEST_DATABASE_URL` (and `TEST_NATS_URL`) to run the same
//! suite against PostgreSQL (and NATS) instead of the embedded default.

#[macro_use]
mod sql;

mod access;
mod audit;
mod auth;
mod bus;
mod cli;
mod cluster;
mod contract;
mod edge;
mod email_delivery;
mod events_flow;
mod fault;
mod headers;
mod helpers;
mod idempotency;
mod inbound;
mod input;
mod instances;
mod jobs;
mod leases;
mod loan_delete;
mod loan_reads;
mod loan_store;
mod loans;
mod long_history;
mod migrations;
mod money_rules;
mod notifications;
mod ops;
mod resilience;
mod retention;
mod routes;
mod schedules;
mod sessions;
mod smtp;
mod store;
mod supervision;
