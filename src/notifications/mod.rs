//! In-app notifications and their e-mails: what an event means to the
//! borrower (`render`), where notifications are kept (`store`), the
//! delivery of the e-mail with bounded retries (`delivery`) and the bounded
//! queue of e-mails waiting for a sender (`email_queue`).

pub mod consumer;
pub mod delivery;
pub mod email_queue;
pub mod render;
pub mod store;
