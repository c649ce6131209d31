//! The `payment-reminders` job: every unpaid installment of a repaying loan
//! due in 3 days or tomorrow gets an in-app notification and an e-mail, at
//! most once per installment and kind — the notification's id is derived
//! from (loan, installment, kind) and `notifications` is unique on it, so
//! reruns and catch-ups never send twice.

use actors::core::{Currency, Money};
use chrono::Duration;
use futures::StreamExt;
use uuid::Uuid;

use super::JobError;
use super::context::{JobContext, Progress};
use crate::notifications::delivery::EmailSender;
use crate::notifications::store::{NewNotification, insert_once};
use crate::store::StoreError;
use crate::store::loans::{DueInstallment, installments_due_on};

/// Installments handled between two progress records (and lease renewals).
const PAGE_SIZE: usize = 500;
/// Namespace of reminder ids (`kind:loan:seq` → UUIDv5).
const REMINDER_NAMESPACE: Uuid = Uuid::from_u128(0x7265_6d69_6e64_6572_2d70_6179_6d65_6e74);

/// The reminders: days before the due date, notification kind, title.
const REMINDERS: [(i64, &str, &str); 2] = [
    (3, "reminder.due_in_3_days", "Payment due in 3 days"),
    (1, "reminder.due_tomorrow", "Payment due tomorrow"),
];

/// Runs the reminders for `progress.record.as_of`.
pub(super) async fn run(progress: &mut Progress<'_>) -> Result<(), JobError> {
    let runner = progress.runner;
    let as_of = progress.record.as_of;
    for (days_before, kind, title) in REMINDERS {
        let due_date = as_of + Duration::days(days_before);
        let due = installments_due_on(&runner.db, due_date).await?;
        tracing::info!(%as_of, %due_date, kind, installments = due.len(), "payment-reminders: installments due");
        for page in due.chunks(PAGE_SIZE) {
            // Built eagerly: a lazy `map` closure here trips the `Send` check of spawned runs.
            let reminders: Vec<_> = page
                .iter()
                .map(|installment| remind(runner, installment, kind, title))
                .collect();
            let failures: Vec<bool> = futures::stream::iter(reminders)
                .buffer_unordered(runner.parallelism)
                .collect()
                .await;
            let failed = failures.iter().filter(|failed| **failed).count();
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            progress
                .page_done(count(page.len() - failed), count(failed))
                .await?;
        }
    }
    Ok(())
}

/// Creates one reminder (once) and sends its e-mail; true if that failed.
async fn remind(
    runner: &JobContext,
    installment: &DueInstallment,
    kind: &str,
    title: &str,
) -> bool {
    let amount = Currency::parse(&installment.currency)
        .and_then(|currency| Money::from_minor(installment.unpaid_minor, currency))
        .map_or_else(
            |_| format!("{} (minor units)", installment.unpaid_minor),
            |money| format!("{money} {}", money.currency().code()),
        );
    let key = format!("{kind}:{}:{}", installment.loan_id, installment.seq);
    let notification = NewNotification {
        user_id: installment.user_id,
        event_id: Uuid::new_v5(&REMINDER_NAMESPACE, key.as_bytes()),
        kind: kind.to_owned(),
        title: title.to_owned(),
        body: format!(
            "Installment {} of your loan, {amount}, is due on {}.",
            installment.seq, installment.due_date
        ),
    };
    match notify(runner, &notification).await {
        Ok(()) => false,
        Err(error) => {
            tracing::warn!(loan_id = %installment.loan_id, seq = installment.seq, %error, "payment-reminders: storing a reminder failed");
            true
        }
    }
}

/// Stores `notification` unless it exists, and sends its e-mail (bounded
/// retries) when it is new. A crash between the two leaves the e-mail
/// pending; the notification consumer sends pending e-mails at start.
pub(super) async fn notify(
    runner: &JobContext,
    notification: &NewNotification,
) -> Result<(), StoreError> {
    if let Some(stored) = insert_once(&runner.db, notification, runner.clock.now()).await? {
        let sender = EmailSender::new(
            runner.db.clone(),
            runner.mailer.clone(),
            runner.clock.clone(),
            runner.metrics.clone(),
        );
        sender.deliver(&stored).await;
    }
    Ok(())
}
