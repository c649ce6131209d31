//! Sending a notification's e-mail, at least once and recognisably the same
//! mail each time: the sender first claims the notification (one sender at a
//! time, across instances), sends with bounded retries under a `Message-ID`
//! derived from the notification, and records the outcome, retrying the
//! recording too while its claim holds.

use std::sync::Arc;
use std::time::Duration;

use actors::mailer::{MailError, Mailer, OutgoingEmail};
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

use super::store::{self, Notification};
use crate::accounts::users;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{Db, StoreError};

/// Attempts per e-mail before it is recorded as failed.
pub const MAX_ATTEMPTS: i32 = 5;
/// Pause before the second attempt; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a claim keeps other senders away. Longer than one attempt (the
/// SMTP adapter gives up after 30 s) plus its backoff; renewed before each
/// retry and each new try at recording the outcome.
pub const CLAIM_TTL: Duration = Duration::from_secs(120);
/// The end of a claim this sender does not use: room for clocks of two
/// instances that disagree a little.
const CLAIM_MARGIN: Duration = Duration::from_secs(15);
/// Pause before recording an outcome again; doubled up to [`RECORD_MAX_BACKOFF`].
const RECORD_FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two tries at recording an outcome.
const RECORD_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Domain of every `Message-ID`. Fixed rather than taken from `MAIL_FROM`, so
/// a mail sent again after a configuration change keeps its id.
pub const MESSAGE_ID_DOMAIN: &str = "loan-tracker.invalid";

/// The `Message-ID` of the e-mail of notification `id`: the same for every
/// attempt and every sender.
pub fn message_id(id: Uuid) -> String {
    format!("<{id}@{MESSAGE_ID_DOMAIN}>")
}

/// Sends notification e-mails and records their outcome.
#[derive(Clone)]
pub struct EmailSender {
    db: Db,
    mailer: Arc<dyn Mailer>,
    clock: Clock,
    metrics: Metrics,
}

/// How one e-mail ended, as recorded on its notification.
struct Outcome {
    status: &'static str,
    attempts: i32,
    error: Option<String>,
}

/// A claim this sender holds on one notification's e-mail.
struct Claim {
    id: Uuid,
    /// `email_claimed_until` as written: the fencing token of a renewal.
    until: DateTime<Utc>,
    /// After this, another sender may take the e-mail over.
    usable_until: Instant,
}

impl EmailSender {
    /// A sender over `db` and `mailer`; claims are timed by `clock`.
    pub fn new(db: Db, mailer: Arc<dyn Mailer>, clock: Clock, metrics: Metrics) -> Self {
        Self {
            db,
            mailer,
            clock,
            metrics,
        }
    }

    /// Claims the e-mail of `notification`, sends it to its user and records
    /// the outcome. Does nothing when another sender holds it or it is done;
    /// leaves it pending (for the next sweep) when the database fails first.
    pub async fn deliver(&self, notification: &Notification) {
        let Some(mut claim) = self.claim(notification.id).await else {
            return;
        };
        let outcome = match users::find_by_id(&self.db, notification.user_id).await {
            Ok(Some(user)) => match self.send(notification, user.email, &mut claim).await {
                Some(outcome) => outcome,
                None => return,
            },
            Ok(None) => Outcome {
                status: "skipped",
                attempts: 0,
                error: Some("no such user".into()),
            },
            Err(error) => {
                return tracing::warn!(%error, id = %notification.id, "loading the recipient failed; e-mail stays pending");
            }
        };
        self.record(notification, &outcome, &mut claim).await;
    }

    async fn claim(&self, id: Uuid) -> Option<Claim> {
        let (now, started) = (self.clock.now(), Instant::now());
        let until = now + CLAIM_TTL;
        match store::claim_email(&self.db, id, now, until).await {
            Ok(true) => Some(Claim {
                id,
                until,
                usable_until: started + (CLAIM_TTL - CLAIM_MARGIN),
            }),
            Ok(false) => {
                tracing::debug!(%id, "e-mail claimed by another sender or already done");
                None
            }
            Err(error) => {
                tracing::warn!(%error, %id, "claiming the e-mail failed; it stays pending");
                None
            }
        }
    }

    /// Extends `claim`; `Ok(false)` when it is no longer ours.
    async fn renew(&self, claim: &mut Claim) -> Result<bool, StoreError> {
        let (until, started) = (self.clock.now() + CLAIM_TTL, Instant::now());
        let renewed = store::renew_email_claim(&self.db, claim.id, claim.until, until).await?;
        if renewed {
            claim.until = until;
            claim.usable_until = started + (CLAIM_TTL - CLAIM_MARGIN);
        }
        Ok(renewed)
    }

    /// Sends with bounded retries, renewing the claim before each retry.
    /// `None` when the claim could not be renewed: the e-mail is left pending
    /// to whoever claims it next.
    async fn send(
        &self,
        notification: &Notification,
        to: String,
        claim: &mut Claim,
    ) -> Option<Outcome> {
        let email = OutgoingEmail {
            message_id: message_id(notification.id),
            to,
            subject: notification.title.clone(),
            body: notification.body.clone(),
        };
        let mut pause = FIRST_BACKOFF;
        let mut attempts = notification.email_attempts;
        loop {
            attempts += 1;
            let failed = |error: String| Outcome {
                status: "failed",
                attempts,
                error: Some(error),
            };
            let error = match self.mailer.send(email.clone()).await {
                Ok(()) => {
                    return Some(Outcome {
                        status: "sent",
                        attempts,
                        error: None,
                    });
                }
                Err(MailError::Permanent(error)) => return Some(failed(error)),
                Err(MailError::Transient(error)) if attempts >= MAX_ATTEMPTS => {
                    return Some(failed(error));
                }
                Err(MailError::Transient(error)) => error,
            };
            tracing::warn!(%error, attempts, id = %notification.id, "e-mail failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
            match self.renew(claim).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(id = %notification.id, "e-mail claimed by another sender; leaving it");
                    return None;
                }
                Err(error) => {
                    tracing::warn!(%error, id = %notification.id, "renewing the e-mail claim failed; it stays pending");
                    return None;
                }
            }
        }
    }

    /// Records `outcome`, retrying with backoff for as long as the claim
    /// holds (renewing it): a mail that went out is not sent again because
    /// one UPDATE failed. Past the claim another sender may send it again,
    /// under the same `Message-ID`.
    async fn record(&self, notification: &Notification, outcome: &Outcome, claim: &mut Claim) {
        let (id, status) = (notification.id, outcome.status);
        let mut pause = RECORD_FIRST_BACKOFF;
        loop {
            let recorded = store::record_email(
                &self.db,
                id,
                status,
                outcome.attempts,
                outcome.error.as_deref(),
            )
            .await;
            let Err(error) = recorded else { break };
            self.metrics.email_outcome_record_failure();
            if Instant::now() + pause >= claim.usable_until {
                return tracing::error!(%error, %id, status, "the e-mail outcome was not recorded before its claim lapsed; it may be sent again with the same Message-ID");
            }
            tracing::warn!(%error, %id, status, "recording the e-mail outcome failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RECORD_MAX_BACKOFF);
            // A failed renewal leaves the claim as it was: its deadline decides.
            if let Err(error) = self.renew(claim).await {
                tracing::debug!(%error, %id, "renewing the e-mail claim failed");
            }
        }
        if status == "failed" {
            tracing::error!(%id, attempts = outcome.attempts, error = outcome.error, "e-mail given up");
        }
    }
}
