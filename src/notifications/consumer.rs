//! The notification actor's work: every loan event becomes (at most) one
//! in-app notification for the loan's owner, a batch of events per
//! multi-row insert, and its e-mail goes to the bounded e-mail queue, never
//! waited for. Pending e-mails nobody holds (left by a crash, by a full
//! queue, or by a sender whose claim lapsed) are swept up at start and then
//! periodically.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::mailer::Mailer;
use actors::store::BoxFuture;

use super::delivery::EmailSender;
use super::email_queue::EmailQueue;
use super::render::notification_for;
use super::store::{self, NewNotification};
use crate::bus::consumer::{BatchHandler, MAX_BATCH};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Db;

/// Pause before a batch is retried after a database failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Most pending e-mails one sweep queues (and never more than the queue's room).
const PENDING_SWEEP_LIMIT: usize = 500;
/// How often pending e-mails nobody holds are looked for (claims of dead
/// senders lapse after [`super::delivery::CLAIM_TTL`]).
pub const PENDING_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Turns events into notifications and queues their e-mails.
pub struct NotificationHandler {
    db: Db,
    clock: Clock,
    emails: EmailQueue,
}

impl NotificationHandler {
    /// A handler writing to `db` and sending through `mailer`.
    pub fn new(db: Db, mailer: Arc<dyn Mailer>, clock: Clock, metrics: Metrics) -> Self {
        Self {
            emails: EmailQueue::start(EmailSender::new(db.clone(), mailer, clock.clone(), metrics)),
            db,
            clock,
        }
    }

    /// Queues the e-mails left pending and unclaimed (a crash between storing
    /// a notification and sending it, a full queue, or a sender whose claim
    /// lapsed), as many as the queue has room for.
    pub async fn resume_pending(&self) {
        let room = self.emails.room().min(PENDING_SWEEP_LIMIT);
        if room == 0 {
            return tracing::debug!("the e-mail queue is full; skipping this sweep");
        }
        let limit = u32::try_from(room).unwrap_or(u32::MAX);
        let pending = match store::pending_email(&self.db, self.clock.now(), limit).await {
            Ok(pending) => pending,
            Err(error) => return tracing::warn!(%error, "listing pending e-mails failed"),
        };
        for notification in pending {
            if !self.emails.offer(notification) {
                break;
            }
        }
    }

    /// Runs [`Self::resume_pending`] every `interval`, for ever (the first
    /// round one `interval` from now).
    pub async fn sweep_every(&self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is now: the start already swept
        loop {
            ticks.tick().await;
            self.resume_pending().await;
        }
    }

    /// Stores the notifications of `batch` in one insert and queues their
    /// e-mails. A message that is not an event, or a loan event whose data does not
    /// fit its type, is rejected alone; an event that
    /// notifies nobody, or was already notified, is acked; when the database
    /// cannot be reached, every event that notifies is retried. When it
    /// refuses the batch (a row it cannot store, e.g. an unknown user), the
    /// notifications are stored one at a time, so only the refused one is
    /// retried.
    async fn notify_batch(&self, batch: &[Delivery]) -> Vec<Settlement> {
        let mut settlements = vec![Settlement::Ack; batch.len()];
        let mut news: Vec<NewNotification> = Vec::new();
        let mut notifying = Vec::new();
        for (position, delivery) in batch.iter().enumerate() {
            match notification_for(&delivery.payload) {
                Ok(Some(new)) => {
                    news.push(new);
                    notifying.push(position);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(subject = %delivery.subject, %error, "event dropped");
                    settlements[position] = Settlement::Reject;
                }
            }
        }
        match store::insert_new(&self.db, &news, self.clock.now()).await {
            Ok(inserted) => self.queue_emails(inserted),
            Err(error) if error.is_refusal() && news.len() > 1 => {
                tracing::warn!(events = news.len(), %error, "the database refused a batch of notifications; storing them one at a time");
                for (new, position) in news.iter().zip(notifying) {
                    settlements[position] = self.notify_one(new).await;
                }
            }
            Err(error) => {
                tracing::warn!(events = news.len(), %error, "storing notifications failed; will retry");
                for position in notifying {
                    settlements[position] = Settlement::Retry { after: RETRY_AFTER };
                }
            }
        }
        settlements
    }

    /// Stores one notification in a statement of its own and queues its e-mail.
    async fn notify_one(&self, new: &NewNotification) -> Settlement {
        match store::insert_new(&self.db, std::slice::from_ref(new), self.clock.now()).await {
            Ok(inserted) => {
                self.queue_emails(inserted);
                Settlement::Ack
            }
            Err(error) => {
                tracing::warn!(event_id = %new.event_id, %error, "storing a notification failed; will retry");
                Settlement::Retry { after: RETRY_AFTER }
            }
        }
    }

    /// Offers each new notification's e-mail to the queue; what does not fit
    /// stays pending for the sweep.
    fn queue_emails(&self, inserted: Vec<store::Notification>) {
        let mut left = 0_usize;
        for notification in inserted {
            if !self.emails.offer(notification) {
                left += 1;
            }
        }
        if left > 0 {
            tracing::info!(
                left,
                "the e-mail queue is full; these mails wait for the pending sweep"
            );
        }
    }
}

impl BatchHandler for NotificationHandler {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn handle_batch<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Settlement>> {
        Box::pin(self.notify_batch(batch))
    }
}
