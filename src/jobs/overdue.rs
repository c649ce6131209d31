//! The `overdue` job: every loan with an unpaid installment past due (and
//! every `OVERDUE` loan, which may have caught up) gets "assess late fees as
//! of D" through its actor. The actor marks it `OVERDUE` or back to
//! `APPROVED` and charges each late installment's fee once; those events
//! notify the owner (`loan.overdue`, `late_fee.applied`). This job adds the
//! notices no event carries: weekly while the loan stays overdue, and when a
//! further installment falls overdue on an already overdue loan.

use actors::store::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::cluster::forward::{ForwardHandler, Forwarded};
use crate::cluster::partition_of;
use actors::core::{InstallmentStatus, Loan, LoanCommand, LoanError, LoanId, LoanStatus};
use actors::tree::LoanRequest;
use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use uuid::Uuid;

use super::JobError;
use super::context::{JobContext, Progress};
use crate::notifications::store::NewNotification;
use crate::store::loans::overdue_candidates;

/// Loans dispatched between two progress records (and lease renewals).
const PAGE_SIZE: usize = 500;
/// Namespace of the deterministic ids of overdue notices: the same notice for
/// the same loan and week (or installment) is never created twice.
const NOTICE_NAMESPACE: Uuid = Uuid::from_u128(0x6f76_6572_6475_652d_6e6f_7469_6365_7321);
/// Kind of the weekly "still overdue" notice.
pub const WEEKLY_KIND: &str = "overdue.weekly";
/// Kind of the notice for an installment falling overdue on an already overdue loan.
pub const INSTALLMENT_KIND: &str = "installment.overdue";

/// What happened to one loan.
enum Assessed {
    /// Assessed (or found not repaying any more: paid or written off meanwhile).
    Done,
    /// The actor or the store failed; the next run tries again.
    Failed,
}

/// Runs the sweep for `progress.record.as_of`.
pub(super) async fn run(progress: &mut Progress<'_>) -> Result<(), JobError> {
    let runner = progress.runner;
    let as_of = progress.record.as_of;
    let candidates = overdue_candidates(&runner.db, as_of).await?;
    tracing::info!(%as_of, candidates = candidates.len(), "overdue: candidate loans found");
    for page in candidates.chunks(PAGE_SIZE) {
        // Built eagerly: a lazy `map` closure here trips the `Send` check of spawned runs.
        let assessments: Vec<_> = page
            .iter()
            .map(|loan_id| assess(runner, *loan_id, as_of))
            .collect();
        let outcomes: Vec<Assessed> = futures::stream::iter(assessments)
            .buffer_unordered(runner.parallelism)
            .collect()
            .await;
        let failed = outcomes
            .iter()
            .filter(|each| matches!(each, Assessed::Failed))
            .count();
        progress
            .page_done(to_u64(outcomes.len() - failed), to_u64(failed))
            .await?;
    }
    Ok(())
}

fn to_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// The kind of an assessment forwarded to its loan's owner.
pub const ASSESS_KIND: &str = "assess";

/// What a forwarded assessment carries, and its answer.
#[derive(Debug, Serialize, Deserialize)]
struct AssessOrder {
    loan_id: Uuid,
    as_of: NaiveDate,
}

#[derive(Debug, Serialize, Deserialize)]
struct AssessAnswer {
    done: bool,
}

/// Assessments forwarded by other instances' runs, done here (the owner).
pub struct ForwardedAssessments(pub(super) std::sync::Arc<JobContext>);

impl ForwardHandler for ForwardedAssessments {
    fn handle(&self, request: Forwarded) -> BoxFuture<'_, Forwarded> {
        Box::pin(async move {
            let done = match serde_json::from_slice::<AssessOrder>(&request.body) {
                Ok(order) => matches!(
                    assess_here(&self.0, order.loan_id, order.as_of).await,
                    Assessed::Done
                ),
                Err(error) => {
                    tracing::warn!(%error, "overdue: unreadable forwarded assessment");
                    false
                }
            };
            Forwarded {
                headers: async_nats::HeaderMap::new(),
                body: serde_json::to_vec(&AssessAnswer { done })
                    .unwrap_or_default()
                    .into(),
            }
        })
    }
}

/// Assesses one loan on its owner: here, or forwarded to the instance that owns it.
async fn assess(runner: &JobContext, loan_id: Uuid, as_of: NaiveDate) -> Assessed {
    let Some(cluster) = runner
        .cluster
        .as_ref()
        .filter(|cluster| !cluster.owns(LoanId::new(loan_id)))
    else {
        return assess_here(runner, loan_id, as_of).await;
    };
    let request = Forwarded {
        headers: async_nats::HeaderMap::new(),
        body: serde_json::to_vec(&AssessOrder { loan_id, as_of })
            .unwrap_or_default()
            .into(),
    };
    let deadline = std::time::Duration::from_secs(30);
    match cluster
        .forwarder()
        .send(
            partition_of(LoanId::new(loan_id)),
            ASSESS_KIND,
            request,
            deadline,
        )
        .await
    {
        Ok(answer) => match serde_json::from_slice::<AssessAnswer>(&answer.body) {
            Ok(AssessAnswer { done: true }) => Assessed::Done,
            _ => Assessed::Failed,
        },
        Err(error) => {
            tracing::warn!(%loan_id, %as_of, %error, "overdue: forwarding the assessment failed");
            Assessed::Failed
        }
    }
}

/// Sends one loan "assess late fees as of `as_of`", then its overdue notices.
async fn assess_here(runner: &JobContext, loan_id: Uuid, as_of: NaiveDate) -> Assessed {
    let request = LoanRequest {
        command: LoanCommand::AssessLateFees { as_of },
        today: runner.clock.today(),
        now: runner.clock.now(),
        actor_id: None,
        reply: None,
    };
    let loan = match runner.tree.execute(LoanId::new(loan_id), request).await {
        Ok(Ok(applied)) => applied.loan,
        // Paid off or written off since the query: nothing to assess.
        Ok(Err(LoanError::InvalidTransition { .. })) => return Assessed::Done,
        Ok(Err(rejection)) => {
            tracing::warn!(%loan_id, %as_of, %rejection, "overdue: assessment refused");
            return Assessed::Failed;
        }
        Err(error) => {
            tracing::warn!(%loan_id, %as_of, %error, "overdue: loan actor failed");
            return Assessed::Failed;
        }
    };
    for notice in notices(&loan, as_of) {
        if let Err(error) = super::reminders::notify(runner, &notice).await {
            tracing::warn!(%loan_id, %as_of, %error, "overdue: storing a notice failed");
            return Assessed::Failed;
        }
    }
    Assessed::Done
}

/// The notices `loan` calls for on `as_of` beyond its events' own: weekly
/// while overdue (days past due 8, 15, 22 …; day 1 is the `loan.overdue`
/// event's), and for an installment that fell due yesterday on a loan that
/// was already overdue. Each id is derived from what it is about.
pub fn notices(loan: &Loan, as_of: NaiveDate) -> Vec<NewNotification> {
    if loan.status() != LoanStatus::Overdue {
        return Vec::new();
    }
    let days_past_due = loan.days_past_due(as_of);
    let figures = loan.figures(as_of);
    let outstanding = format!(
        "{} {}",
        figures.total_outstanding,
        figures.total_outstanding.currency().code()
    );
    let loan_id = loan.loan_id().as_uuid();
    let notice = |key: String, kind: &str, title: &str, body: String| NewNotification {
        user_id: loan.user_id().as_uuid(),
        event_id: Uuid::new_v5(
            &NOTICE_NAMESPACE,
            format!("{kind}:{loan_id}:{key}").as_bytes(),
        ),
        kind: kind.to_owned(),
        title: title.to_owned(),
        body,
    };
    let mut notices = Vec::new();
    if days_past_due >= 8 && (days_past_due - 1).is_multiple_of(7) {
        let oldest_due = as_of - Duration::days(i64::from(days_past_due));
        let week = (days_past_due - 1) / 7;
        notices.push(notice(
            format!("{oldest_due}:{week}"),
            WEEKLY_KIND,
            "Loan still overdue",
            format!("Your loan is {days_past_due} days past due as of {as_of}; {outstanding} is outstanding. Please pay as soon as you can."),
        ));
    }
    let yesterday = as_of - Duration::days(1);
    if days_past_due > 1 {
        for view in loan.installment_views(as_of) {
            if view.due_date == yesterday && view.status == InstallmentStatus::Overdue {
                notices.push(notice(
                    view.seq.to_string(),
                    INSTALLMENT_KIND,
                    "Installment overdue",
                    format!("Installment {} due on {yesterday} is unpaid; your loan is {days_past_due} days past due.", view.seq),
                ));
            }
        }
    }
    notices
}
