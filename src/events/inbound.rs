//! The messages on `LOAN_INBOUND` (SPEC §5), version 1: payments reported
//! by banks and gateways, and the copies of those that could never apply.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Subject inbound payments arrive on.
pub const INBOUND_PAYMENT_SUBJECT: &str = "loans.inbound.payments";
/// Subject dead letters are published on.
pub const DEAD_LETTER_SUBJECT: &str = "loans.inbound.dead";

/// A payment from a bank or gateway, on `loans.inbound.payments`. Applied
/// exactly once per `external_ref`; a member not listed here makes it a
/// dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundPayment {
    /// The loan paid.
    pub loan_id: Uuid,
    /// Amount in major units, e.g. `"125.50"`.
    pub amount: String,
    /// ISO 4217 code; must be the loan's.
    pub currency: String,
    /// The sender's reference, unique across all loans (1–200 characters).
    pub external_ref: String,
    /// Date paid (default: today; never in the future).
    #[serde(default)]
    pub paid_on: Option<NaiveDate>,
}

/// A message that could never apply, on `loans.inbound.dead`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterMessage {
    /// Why it cannot apply.
    pub reason: String,
    /// The sender's reference, when the message had a readable one.
    pub external_ref: Option<String>,
    /// The message as received (lossy UTF-8).
    pub message: String,
}
