//! What operators read that lives elsewhere: the values gathered at each
//! `GET /metrics` (actor tree, outbox backlog, event flow, pools; see
//! [`scrape::refresh`]) and the periodic summary published on the bus
//! ([`summary::summary`]). It reads through the modules that own each table;
//! [`crate::metrics`] keeps the recorder these values are written into.

pub mod scrape;
pub mod summary;
