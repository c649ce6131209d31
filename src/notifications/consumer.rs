//! The notification actor's work: every loan event becomes (at most) one
//! in-app notification for the loan's owner, and its e-mail is sent in the
//! background with bounded retries.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::mailer::Mailer;
use actors::store::BoxFuture;
use tokio::sync::Semaphore;

use super::delivery::deliver;
use super::render::notification_for;
use super::store;
use crate::bus::consumer::Handler;
use crate::clock::Clock;
use crate::store::Db;

/// E-mails being sent at once; more wait their turn.
const MAX_CONCURRENT_EMAILS: usize = 8;
/// Pause before a delivery is retried after a database failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Pending e-mails picked up at start (left by a crash); the rest on the next start.
const PENDING_SWEEP_LIMIT: u32 = 500;

/// Turns events into notifications and sends their e-mails.
pub struct NotificationHandler {
    db: Db,
    mailer: Arc<dyn Mailer>,
    clock: Clock,
    sending: Arc<Semaphore>,
}

impl NotificationHandler {
    /// A handler writing to `db` and sending through `mailer`.
    pub fn new(db: Db, mailer: Arc<dyn Mailer>, clock: Clock) -> Self {
        Self {
            db,
            mailer,
            clock,
            sending: Arc::new(Semaphore::new(MAX_CONCURRENT_EMAILS)),
        }
    }

    /// Sends the e-mails a previous run left pending (a crash between storing
    /// a notification and sending it).
    pub async fn resume_pending(&self) {
        match store::pending_email(&self.db, PENDING_SWEEP_LIMIT).await {
            Ok(pending) => {
                for notification in pending {
                    self.send_in_background(notification);
                }
            }
            Err(error) => tracing::warn!(%error, "listing pending e-mails failed"),
        }
    }

    fn send_in_background(&self, notification: store::Notification) {
        let (db, mailer, sending) = (self.db.clone(), self.mailer.clone(), self.sending.clone());
        tokio::spawn(async move {
            let Ok(_permit) = sending.acquire_owned().await else {
                return;
            };
            deliver(&db, &mailer, &notification).await;
        });
    }
}

impl Handler for NotificationHandler {
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Settlement> {
        // `Delivery` is not `Sync`: parse before the future starts.
        let parsed = serde_json::from_slice::<serde_json::Value>(&delivery.payload);
        let subject = delivery.subject.clone();
        Box::pin(async move {
            let Ok(envelope) = parsed else {
                tracing::error!(%subject, "event is not JSON; dropped");
                return Settlement::Reject;
            };
            let Some(new) = notification_for(&envelope) else {
                return Settlement::Ack;
            };
            match store::insert_once(&self.db, &new, self.clock.now()).await {
                Ok(Some(notification)) => {
                    self.send_in_background(notification);
                    Settlement::Ack
                }
                // Already notified for this event: a redelivery.
                Ok(None) => Settlement::Ack,
                Err(error) => {
                    tracing::warn!(%error, "storing a notification failed; will retry");
                    Settlement::Retry { after: RETRY_AFTER }
                }
            }
        })
    }
}
