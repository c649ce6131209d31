//! Inbound payments from banks and gateways (`loans.inbound.payments`):
//! validated, applied through the loan's actor with the sender's
//! `external_ref` as the payment reference (so a redelivery is a no-op), and
//! acknowledged only after the commit (`apply`, `handler`). A message for a
//! loan still `PENDING` is redelivered with doubling pauses for a bounded
//! number of deliveries; one that can never apply is recorded as a dead
//! letter and copied to `loans.inbound.dead` with the reason
//! (`dead_letters`). Operators list dead letters and replay them
//! (`replay`).

mod apply;
pub mod dead_letters;
mod handler;
mod replay;

pub use apply::{INBOUND_KIND, InboundPayments, Verdict};
pub use handler::InboundPaymentHandler;
pub use replay::{ReplayError, replay};

pub use crate::events::inbound::DEAD_LETTER_SUBJECT;
