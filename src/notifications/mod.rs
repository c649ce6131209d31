//! In-app notifications and their e-mails: what an event means to the
//! borrower (`render`), where notifications are kept (`store`), and the
//! delivery of the e-mail with bounded retries (`delivery`).

pub mod consumer;
pub mod delivery;
pub mod render;
pub mod store;
