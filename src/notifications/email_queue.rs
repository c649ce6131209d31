//! The bounded road from a stored notification to its e-mail: a queue of
//! [`EMAIL_QUEUE_CAPACITY`] notifications drained by one dispatcher that
//! sends at most [`MAX_CONCURRENT_EMAILS`] at once.
//!
//! Nothing waits for it: [`EmailQueue::offer`] queues or, when the queue is
//! full, leaves the mail pending and unclaimed in the database, where the
//! periodic sweep of pending mails finds it. So the consumer's pace never
//! depends on the mail server's, and the memory and tasks e-mail takes are
//! bounded however far the mail server falls behind.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::delivery::EmailSender;
use super::store::Notification;

/// Notifications waiting for a sender; more are left to the sweep.
pub const EMAIL_QUEUE_CAPACITY: usize = 1_024;
/// E-mails being sent at once; the rest wait in the queue.
pub const MAX_CONCURRENT_EMAILS: usize = 8;

/// The sending end of the queue; the dispatcher ends when every clone is gone.
#[derive(Clone)]
pub struct EmailQueue {
    queue: mpsc::Sender<Notification>,
}

impl EmailQueue {
    /// Starts the dispatcher that hands queued notifications to `sender`.
    pub fn start(sender: EmailSender) -> Self {
        let (queue, queued) = mpsc::channel(EMAIL_QUEUE_CAPACITY);
        tokio::spawn(dispatch(sender, queued));
        Self { queue }
    }

    /// Queues the e-mail of `notification` without waiting; `false` when
    /// the queue is full (the mail stays pending for the next sweep).
    pub fn offer(&self, notification: Notification) -> bool {
        self.queue.try_send(notification).is_ok()
    }

    /// How many more notifications the queue takes right now.
    pub fn room(&self) -> usize {
        self.queue.capacity()
    }
}

/// Sends each queued notification in a task of its own, at most
/// [`MAX_CONCURRENT_EMAILS`] at once; ends once the queue is closed and empty.
async fn dispatch(sender: EmailSender, mut queued: mpsc::Receiver<Notification>) {
    let sending = Arc::new(Semaphore::new(MAX_CONCURRENT_EMAILS));
    while let Some(notification) = queued.recv().await {
        let Ok(permit) = sending.clone().acquire_owned().await else {
            return; // The semaphore is never closed.
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            sender.deliver(&notification).await;
            drop(permit);
        });
    }
}
