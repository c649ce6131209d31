//! loan-tracker adapters: the HTTP edge, the stores, the bus, settings and start-up.
//!
//! The loan rules and the actor tree live in the `actors` crate; this crate
//! connects them to the outside world. See ARCHITECTURE.md for the map.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod date;
pub mod events;
pub mod healthcheck;
pub mod http;
pub mod inbound;
pub mod jobs;
pub mod mailer;
pub mod metrics;
pub mod notifications;
pub mod ops;
pub mod settings;
pub mod store;
pub mod telemetry;
