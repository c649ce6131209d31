//! The loan-tracker core.
//!
//! `core` holds the loan domain as plain synchronous functions (no IO, no async);
//! the actor tree and the seams the adapters implement live beside it.

pub mod bus;
pub mod core;
pub mod mailer;
pub mod store;
pub mod tree;
