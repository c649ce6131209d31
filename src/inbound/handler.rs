//! The inbound consumer: settles each delivery as its verdict says.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Bus, Delivery, OutgoingMessage, Settlement};
use actors::store::BoxFuture;

use super::DEAD_LETTER_SUBJECT;
use super::apply::{InboundPayments, Verdict};
use super::dead_letters;
use crate::bus::backoff::redelivery_pause;
use crate::bus::consumer::Handler;
use crate::clock::Clock;
use crate::events::inbound::DeadLetterMessage;
use crate::settings::events::PendingRetry;
use crate::store::Db;

/// Pause before redelivery after an infrastructure failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Applies inbound payments; buries what can never apply.
pub struct InboundPaymentHandler {
    payments: InboundPayments,
    db: Db,
    bus: Arc<dyn Bus>,
    clock: Clock,
    pending_retry: PendingRetry,
}

impl InboundPaymentHandler {
    /// A handler applying through `payments`, burying into `db` and on `bus`.
    pub fn new(
        payments: InboundPayments,
        db: Db,
        bus: Arc<dyn Bus>,
        clock: Clock,
        pending_retry: PendingRetry,
    ) -> Self {
        Self {
            payments,
            db,
            bus,
            clock,
            pending_retry,
        }
    }

    /// Records the dead letter and copies it to the dead-letter subject.
    async fn bury(
        &self,
        payload: &[u8],
        external_ref: Option<&str>,
        reason: &str,
    ) -> Result<(), String> {
        dead_letters::record(&self.db, payload, external_ref, reason, self.clock.now())
            .await
            .map_err(|error| error.to_string())?;
        let body = DeadLetterMessage {
            reason: reason.to_owned(),
            external_ref: external_ref.map(str::to_owned),
            message: String::from_utf8_lossy(payload).into_owned(),
        };
        // Through a `Value`: its members go out sorted, as they always have.
        let body = serde_json::to_value(&body).map_err(|error| error.to_string())?;
        let message = OutgoingMessage {
            subject: DEAD_LETTER_SUBJECT.into(),
            message_id: format!("dead-{}", dead_letters::digest(payload)),
            payload: body.to_string().into_bytes(),
        };
        self.bus
            .publish(message)
            .await
            .map_err(|error| error.to_string())
    }

    async fn bury_and_settle(
        &self,
        payload: &[u8],
        external_ref: Option<&str>,
        reason: &str,
    ) -> Settlement {
        tracing::warn!(?external_ref, %reason, "inbound payment cannot apply; dead-lettered");
        match self.bury(payload, external_ref, reason).await {
            Ok(()) => Settlement::Ack,
            Err(error) => {
                tracing::warn!(%error, "recording a dead letter failed; will retry");
                Settlement::Retry { after: RETRY_AFTER }
            }
        }
    }
}

impl Handler for InboundPaymentHandler {
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement> {
        // `Delivery` is not `Sync`: take what the future needs before it starts.
        let payload = delivery.payload.clone();
        let delivery_count = delivery.delivery_count;
        Box::pin(async move {
            match self.payments.apply(&payload).await {
                Verdict::Applied | Verdict::AlreadyApplied => Settlement::Ack,
                Verdict::NotYet { reason, .. }
                    if delivery_count < u64::from(self.pending_retry.max_attempts) =>
                {
                    let after = redelivery_pause(
                        delivery_count,
                        self.pending_retry.first_pause,
                        self.pending_retry.max_pause,
                    );
                    tracing::info!(%reason, delivery_count, ?after, "inbound payment not applicable yet; will retry");
                    Settlement::Retry { after }
                }
                Verdict::NotYet {
                    external_ref,
                    reason,
                } => {
                    let reason = format!("{reason} after {delivery_count} deliveries");
                    self.bury_and_settle(&payload, Some(&external_ref), &reason)
                        .await
                }
                Verdict::Never {
                    external_ref,
                    reason,
                } => {
                    self.bury_and_settle(&payload, external_ref.as_deref(), &reason)
                        .await
                }
                Verdict::Failed { reason: error } => {
                    tracing::warn!(%error, "inbound payment not applied yet; will retry");
                    Settlement::Retry { after: RETRY_AFTER }
                }
            }
        })
    }
}
