//! Sending a notification's e-mail: bounded retries with backoff, the
//! outcome recorded on the notification.

use std::sync::Arc;
use std::time::Duration;

use actors::mailer::{MailError, Mailer, OutgoingEmail};

use super::store::{self, Notification};
use crate::accounts::users;
use crate::store::Db;

/// Attempts per e-mail before it is recorded as failed.
pub const MAX_ATTEMPTS: i32 = 5;
/// Pause before the second attempt; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Sends the e-mail of `notification` to its user and records the outcome.
pub async fn deliver(db: &Db, mailer: &Arc<dyn Mailer>, notification: &Notification) {
    let user = match users::find_by_id(db, notification.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return record(db, notification, "skipped", 0, Some("no such user")).await,
        Err(error) => {
            return tracing::warn!(%error, id = %notification.id, "loading the recipient failed; e-mail stays pending");
        }
    };
    let email = OutgoingEmail {
        to: user.email,
        subject: notification.title.clone(),
        body: notification.body.clone(),
    };
    let mut pause = FIRST_BACKOFF;
    let mut attempts = notification.email_attempts;
    loop {
        attempts += 1;
        match mailer.send(email.clone()).await {
            Ok(()) => return record(db, notification, "sent", attempts, None).await,
            Err(MailError::Permanent(error)) => {
                return record(db, notification, "failed", attempts, Some(&error)).await;
            }
            Err(MailError::Transient(error)) if attempts >= MAX_ATTEMPTS => {
                return record(db, notification, "failed", attempts, Some(&error)).await;
            }
            Err(MailError::Transient(error)) => {
                tracing::warn!(%error, attempts, id = %notification.id, "e-mail failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn record(
    db: &Db,
    notification: &Notification,
    status: &str,
    attempts: i32,
    error: Option<&str>,
) {
    if let Err(store_error) =
        store::record_email(db, notification.id, status, attempts, error).await
    {
        tracing::error!(%store_error, id = %notification.id, status, "recording the e-mail outcome failed");
    }
    if status == "failed" {
        tracing::error!(id = %notification.id, attempts, error, "e-mail given up");
    }
}
