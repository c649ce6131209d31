//! The notification actor's work: every loan event becomes (at most) one
//! in-app notification for the loan's owner, and its e-mail is sent in the
//! background with bounded retries. Pending e-mails nobody holds (left by a
//! crash, or by a sender whose claim lapsed) are swept up at start and then
//! periodically.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::mailer::Mailer;
use actors::store::BoxFuture;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::delivery::EmailSender;
use super::render::notification_for;
use super::store;
use crate::bus::consumer::Handler;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Db;

/// E-mails being sent at once; more wait their turn.
const MAX_CONCURRENT_EMAILS: usize = 8;
/// Pause before a delivery is retried after a database failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Unclaimed pending e-mails queued by sweeps at once; a sweep queues only
/// as many as the previous ones left room for.
const PENDING_SWEEP_LIMIT: usize = 500;
/// How often pending e-mails nobody holds are looked for (claims of dead
/// senders lapse after [`super::delivery::CLAIM_TTL`]).
pub const PENDING_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Turns events into notifications and sends their e-mails.
pub struct NotificationHandler {
    db: Db,
    clock: Clock,
    sender: EmailSender,
    sending: Arc<Semaphore>,
    /// Room left for e-mails queued by sweeps.
    sweep_room: Arc<Semaphore>,
}

impl NotificationHandler {
    /// A handler writing to `db` and sending through `mailer`.
    pub fn new(db: Db, mailer: Arc<dyn Mailer>, clock: Clock, metrics: Metrics) -> Self {
        Self {
            sender: EmailSender::new(db.clone(), mailer, clock.clone(), metrics),
            db,
            clock,
            sending: Arc::new(Semaphore::new(MAX_CONCURRENT_EMAILS)),
            sweep_room: Arc::new(Semaphore::new(PENDING_SWEEP_LIMIT)),
        }
    }

    /// Sends the e-mails left pending and unclaimed (a crash between storing
    /// a notification and sending it, or a sender whose claim lapsed).
    pub async fn resume_pending(&self) {
        let room = self.sweep_room.available_permits();
        let limit = u32::try_from(room).unwrap_or(u32::MAX);
        if limit == 0 {
            return tracing::debug!("previous sweeps still queued; skipping this one");
        }
        let pending = match store::pending_email(&self.db, self.clock.now(), limit).await {
            Ok(pending) => pending,
            Err(error) => return tracing::warn!(%error, "listing pending e-mails failed"),
        };
        for notification in pending {
            let Ok(room) = self.sweep_room.clone().try_acquire_owned() else {
                break;
            };
            self.send_in_background(notification, Some(room));
        }
    }

    /// Runs [`Self::resume_pending`] every `interval` until aborted.
    pub fn sweep_every(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let handler = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is now: the start already swept
            loop {
                ticks.tick().await;
                handler.resume_pending().await;
            }
        })
    }

    /// Sends in a task of its own; `room` is held until done when a sweep queued it.
    fn send_in_background(
        &self,
        notification: store::Notification,
        room: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let (sender, sending) = (self.sender.clone(), self.sending.clone());
        tokio::spawn(async move {
            let _room = room;
            let Ok(_permit) = sending.acquire_owned().await else {
                return;
            };
            sender.deliver(&notification).await;
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
                    self.send_in_background(notification, None);
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
