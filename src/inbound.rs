//! Inbound payments from banks and gateways (`loans.inbound.payments`):
//! validated, applied through the loan's actor with the sender's
//! `external_ref` as the payment reference (so a redelivery is a no-op), and
//! acknowledged only after the commit. A message that can never apply is
//! recorded and copied to `loans.inbound.dead` with the reason.

use std::time::Duration;

use actors::bus::{Bus, Delivery, OutgoingMessage, Settlement};
use actors::core::{LoanCommand, LoanId, Money, PaymentId};
use actors::store::BoxFuture;
use actors::tree::{LoanRequest, LoanTree, TreeError};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

use crate::bus::consumer::Handler;
use crate::clock::Clock;
use crate::store::Db;
use crate::store::loans::get_loan;
use crate::with_pool;

/// Subject dead letters are published on.
pub const DEAD_LETTER_SUBJECT: &str = "loans.inbound.dead";
/// Pause before redelivery after an infrastructure failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest accepted external reference.
const MAX_REF_CHARS: usize = 200;
/// Namespace of payment ids derived from (loan, external_ref).
const INBOUND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x696e_626f_756e_642d_7061_796d_656e_7473);

/// An inbound payment message (SPEC §5).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundPayment {
    loan_id: Uuid,
    amount: String,
    currency: String,
    external_ref: String,
    paid_on: Option<NaiveDate>,
}

/// Applies inbound payments.
pub struct InboundPaymentHandler {
    db: Db,
    tree: LoanTree,
    bus: Arc<dyn Bus>,
    clock: Clock,
}

/// Why a message cannot apply, or that it should be retried.
enum Outcome {
    Applied,
    Dead {
        external_ref: Option<String>,
        reason: String,
    },
    Retry(String),
}

impl InboundPaymentHandler {
    /// A handler applying payments through `tree`.
    pub fn new(db: Db, tree: LoanTree, bus: Arc<dyn Bus>, clock: Clock) -> Self {
        Self {
            db,
            tree,
            bus,
            clock,
        }
    }

    async fn apply(&self, payload: &[u8]) -> Outcome {
        let message: InboundPayment = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(error) => {
                return Outcome::Dead {
                    external_ref: None,
                    reason: format!("invalid message: {error}"),
                };
            }
        };
        let external_ref = Some(message.external_ref.clone());
        let dead = |reason: String| Outcome::Dead {
            external_ref: external_ref.clone(),
            reason,
        };
        let reference = message.external_ref.trim();
        if reference.is_empty() || reference.chars().count() > MAX_REF_CHARS {
            return dead(format!(
                "external_ref must be 1 to {MAX_REF_CHARS} characters"
            ));
        }
        let loan_id = LoanId::new(message.loan_id);
        let view = match get_loan(&self.db, loan_id).await {
            Ok(Some(view)) => view,
            Ok(None) => return dead(format!("unknown loan {}", message.loan_id)),
            Err(error) => return Outcome::Retry(error.to_string()),
        };
        let currency = view.loan.terms().currency();
        if message.currency != currency.code() {
            return dead(format!(
                "currency {} does not match the loan's {}",
                message.currency,
                currency.code()
            ));
        }
        let amount = match Money::parse_positive(&message.amount, currency) {
            Ok(amount) => amount,
            Err(error) => return dead(format!("amount: {error}")),
        };
        let payment_id = PaymentId::new(Uuid::new_v5(
            &INBOUND_ID_NAMESPACE,
            format!("{loan_id}:{reference}").as_bytes(),
        ));
        let (now, today) = (self.clock.now(), self.clock.today());
        let command = LoanCommand::ApplyPayment {
            payment_id,
            amount,
            paid_on: message.paid_on.unwrap_or(today),
            reference: Some(reference.to_owned()),
            note: None,
        };
        match self
            .tree
            .execute(
                loan_id,
                LoanRequest {
                    command,
                    today,
                    now,
                    actor_id: None,
                },
            )
            .await
        {
            Ok(Ok(_)) => Outcome::Applied,
            Ok(Err(rejection)) => dead(rejection.to_string()),
            Err(TreeError::NotFound(_)) => dead(format!("unknown loan {}", message.loan_id)),
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    /// Records the dead letter and copies it to the dead-letter subject.
    async fn bury(
        &self,
        payload: &[u8],
        external_ref: Option<String>,
        reason: &str,
    ) -> Result<(), String> {
        let digest: String = Sha256::digest(payload)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let id = Uuid::new_v5(&INBOUND_ID_NAMESPACE, digest.as_bytes());
        with_pool!(&self.db, |pool| sqlx::query(
            "insert into inbound_dead_letters (id, external_ref, payload, reason, received_at) values ($1, $2, $3, $4, $5) \
             on conflict (id) do nothing"
        )
        .bind(id)
        .bind(&external_ref)
        .bind(payload)
        .bind(reason)
        .bind(self.clock.now())
        .execute(pool)
        .await
        .map(drop))
        .map_err(|error| error.to_string())?;
        let body = json!({ "reason": reason, "external_ref": external_ref, "message": String::from_utf8_lossy(payload) });
        let message = OutgoingMessage {
            subject: DEAD_LETTER_SUBJECT.into(),
            message_id: format!("dead-{digest}"),
            payload: body.to_string().into_bytes(),
        };
        self.bus
            .publish(message)
            .await
            .map_err(|error| error.to_string())
    }
}

impl Handler for InboundPaymentHandler {
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement> {
        // `Delivery` is not `Sync`: take what the future needs before it starts.
        let payload = delivery.payload.clone();
        Box::pin(async move {
            match self.apply(&payload).await {
                Outcome::Applied => Settlement::Ack,
                Outcome::Retry(error) => {
                    tracing::warn!(%error, "inbound payment not applied yet; will retry");
                    Settlement::Retry { after: RETRY_AFTER }
                }
                Outcome::Dead {
                    external_ref,
                    reason,
                } => {
                    tracing::warn!(?external_ref, %reason, "inbound payment cannot apply; dead-lettered");
                    match self.bury(&payload, external_ref, &reason).await {
                        Ok(()) => Settlement::Ack,
                        Err(error) => {
                            tracing::warn!(%error, "recording a dead letter failed; will retry");
                            Settlement::Retry { after: RETRY_AFTER }
                        }
                    }
                }
            }
        })
    }
}
