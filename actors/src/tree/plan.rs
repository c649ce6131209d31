//! The pure part of an actor turn: decide a batch against the evolving state and
//! describe the one commit that records it. No IO, no clock.

use chrono::{DateTime, Utc};
use uuid::{NoContext, Timestamp, Uuid};

use crate::core::{Loan, LoanError, LoanId};
use crate::store::{EventRecord, InstallmentWrites, LoanCommit};

use super::types::LoanRequest;

/// A batch decided in order: the state after the accepted commands and each command's fate.
#[derive(Debug)]
pub(crate) struct BatchPlan {
    /// The loan after every accepted command, in order.
    pub(crate) after: Loan,
    /// One entry per request, in order: its events (empty for a no-op repeat) or the rejection.
    pub(crate) outcomes: Vec<Result<Vec<EventRecord>, LoanError>>,
    /// Commands that produced events: what the commit's `commands` counts.
    pub(crate) effective: u64,
}

/// A v7 event id whose time part is the request's `now` (time is data; the rest is random).
pub(crate) fn event_id(now: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        seconds,
        now.timestamp_subsec_nanos(),
    ))
}

/// Decides `requests` one after the other against `start`, applying each accepted
/// command's events before deciding the next, so the batch is exactly what sending
/// them one by one would have produced. A rejection changes nothing and does not
/// stop the others.
pub(crate) fn plan_batch(
    start: &Loan,
    requests: &[&LoanRequest],
    mut new_event_id: impl FnMut(DateTime<Utc>) -> Uuid,
) -> BatchPlan {
    let mut after = start.clone();
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut effective = 0;
    for request in requests {
        match after.decide(&request.command, request.today) {
            Ok(events) => {
                for event in &events {
                    after.apply(event);
                }
                if !events.is_empty() {
                    effective += 1;
                }
                let records = events
                    .into_iter()
                    .map(|event| EventRecord {
                        event_id: new_event_id(request.now),
                        occurred_at: request.now,
                        actor_id: request.actor_id,
                        event,
                    })
                    .collect();
                outcomes.push(Ok(records));
            }
            Err(rejection) => outcomes.push(Err(rejection)),
        }
    }
    BatchPlan {
        after,
        outcomes,
        effective,
    }
}

/// The commit recording `plan` on top of `expected_version`, or `None` when no
/// command changed anything (nothing to write, the version stays).
pub(crate) fn commit_for(
    loan_id: LoanId,
    (start, expected_version): (&Loan, u64),
    plan: &BatchPlan,
) -> Option<LoanCommit> {
    if plan.effective == 0 {
        return None;
    }
    let events: Vec<EventRecord> = plan
        .outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    Some(LoanCommit {
        loan_id,
        expected_version: Some(expected_version),
        commands: plan.effective,
        snapshot: plan.after.snapshot(),
        installments: InstallmentWrites::between(start.installments(), plan.after.installments()),
        events,
        replies: Vec::new(),
    })
}
