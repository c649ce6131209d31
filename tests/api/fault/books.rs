//! What must hold after the faults: the payments against what the clients
//! saw, each loan's figures against its payments and commits, the outbox,
//! the stream and the audit trail against each other.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::clients::{Attempt, Outcome};
use crate::helpers::eventually;

/// Longest wait for the relay and the audit consumer to catch up.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// Problems listed in one failure message.
const SHOWN_PROBLEMS: usize = 20;

/// A payment as stored.
#[derive(Debug, sqlx::FromRow)]
struct StoredPayment {
    id: Uuid,
    loan_id: Uuid,
    amount_minor: i64,
    fee_minor: i64,
    interest_minor: i64,
    principal_minor: i64,
    reversed: bool,
}

/// Reads behind the API (the database) and through it (as ADMIN).
pub struct Books {
    /// The deployment's database.
    pub pool: PgPool,
    /// Where the service listens.
    pub addr: SocketAddr,
    /// An ADMIN's token.
    pub admin_token: String,
    /// HTTP client.
    pub http: reqwest::Client,
}

fn assert_none(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s), first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(SHOWN_PROBLEMS)].join("\n")
    );
}

impl Books {
    async fn payments(&self) -> Vec<StoredPayment> {
        sqlx::query_as(
            "select id, loan_id, amount_minor, fee_minor, interest_minor, principal_minor, \
             reversed_on is not null as reversed from payments",
        )
        .fetch_all(&self.pool)
        .await
        .expect("payments readable")
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("http://{}/api/v1{path}", self.addr))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("the service answers");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }

    /// Every acknowledged payment stored exactly once; no key, and no
    /// unknown keyless attempt, stored twice; nothing stored that no client sent.
    pub async fn payments_match_the_attempts(&self, attempts: &[Attempt]) {
        let stored = self.payments().await;
        let mut by_amount: HashMap<i64, Vec<&StoredPayment>> = HashMap::new();
        for payment in &stored {
            by_amount
                .entry(payment.amount_minor)
                .or_default()
                .push(payment);
        }
        let by_id: HashMap<Uuid, &StoredPayment> = stored.iter().map(|p| (p.id, p)).collect();
        let sent: HashMap<i64, &Attempt> = attempts.iter().map(|a| (a.amount_minor, a)).collect();
        assert_eq!(sent.len(), attempts.len(), "two attempts share an amount");
        let mut problems: Vec<String> = stored
            .iter()
            .filter(|payment| {
                sent.get(&payment.amount_minor)
                    .is_none_or(|attempt| attempt.loan_id != payment.loan_id)
            })
            .map(|payment| format!("stored payment {payment:?} matches no attempt"))
            .collect();
        for attempt in attempts {
            let copies = by_amount
                .get(&attempt.amount_minor)
                .map_or(&[][..], Vec::as_slice);
            problems.extend(attempt_problem(attempt, copies, &by_id));
        }
        assert_none("payments against what the clients saw", &problems);
    }

    /// Each loan's figures equal the sums of its payments' allocations and its
    /// schedule; its version counts its commits (one event each: applied,
    /// approved, one `payment.received` per payment, each naming its payment).
    pub async fn loans_balance(&self, loans: &[Uuid]) {
        let stored = self.payments().await;
        let events: Vec<(Uuid, String, Value)> =
            sqlx::query_as("select aggregate_id, subject, payload from outbox")
                .fetch_all(&self.pool)
                .await
                .expect("outbox readable");
        let mut problems = Vec::new();
        for loan_id in loans {
            let loan = self.get(&format!("/loans/{loan_id}")).await;
            let schedule = self.get(&format!("/loans/{loan_id}/schedule")).await;
            let payments: Vec<&StoredPayment> =
                stored.iter().filter(|p| p.loan_id == *loan_id).collect();
            let loan_events: Vec<&(Uuid, String, Value)> =
                events.iter().filter(|e| e.0 == *loan_id).collect();
            problems.extend(loan_problems(&loan, &schedule, &payments, &loan_events));
        }
        assert_none("loan figures against payments and commits", &problems);
    }

    /// No outbox row is left unpublished.
    pub async fn outbox_drains(&self) {
        eventually("the outbox to drain", SETTLE_DEADLINE, || async {
            let left: i64 =
                sqlx::query_scalar("select count(*) from outbox where published_at is null")
                    .fetch_one(&self.pool)
                    .await
                    .ok()?;
            (left == 0).then_some(())
        })
        .await;
    }

    /// Each event on the stream once, under its event id; each audited once;
    /// the audit chain verifies.
    pub async fn events_published_and_audited_once(&self, nats_url: &str, namespace: &str) {
        let outbox: BTreeSet<Uuid> = sqlx::query_scalar("select event_id from outbox")
            .fetch_all(&self.pool)
            .await
            .expect("outbox readable")
            .into_iter()
            .collect();
        let stream = crate::bus::stream_message_ids_at(nats_url, namespace).await;
        let on_stream: BTreeSet<Uuid> = stream
            .iter()
            .map(|id| id.parse().expect("message ids are event ids"))
            .collect();
        assert_eq!(
            stream.len(),
            on_stream.len(),
            "an event is on the stream twice"
        );
        assert_eq!(on_stream, outbox, "the stream differs from the outbox");
        eventually("every event audited", SETTLE_DEADLINE, || async {
            let missing: i64 = sqlx::query_scalar(
                "select count(*) from outbox o where not exists \
                 (select 1 from audit_log a where a.event_id = o.event_id)",
            )
            .fetch_one(&self.pool)
            .await
            .ok()?;
            (missing == 0).then_some(())
        })
        .await;
        let audited: Vec<(Uuid, i64)> =
            sqlx::query_as("select event_id, count(*) from audit_log group by event_id")
                .fetch_all(&self.pool)
                .await
                .expect("audit log readable");
        let twice: Vec<&(Uuid, i64)> = audited.iter().filter(|(_, n)| *n != 1).collect();
        assert!(twice.is_empty(), "events audited more than once: {twice:?}");
        let audited: BTreeSet<Uuid> = audited.into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            audited, outbox,
            "audit entries for events not in the outbox"
        );
        let verify = self.get("/audit-logs/verify").await;
        assert_eq!(verify["ok"], true, "{verify}");
        assert_eq!(verify["checked"], outbox.len(), "{verify}");
    }
}

/// The tries of an attempt, repeats folded: `503, no connection ×3, 201`.
fn history(tries: &[String]) -> String {
    let mut folded: Vec<(&str, usize)> = Vec::new();
    for seen in tries {
        match folded.last_mut() {
            Some((last, count)) if *last == seen.as_str() => *count += 1,
            _ => folded.push((seen, 1)),
        }
    }
    folded
        .iter()
        .map(|(seen, count)| match count {
            1 => (*seen).to_owned(),
            _ => format!("{seen} ×{count}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with one attempt's stored copies (`copies`: the payments of its amount).
fn attempt_problem(
    attempt: &Attempt,
    copies: &[&StoredPayment],
    by_id: &HashMap<Uuid, &StoredPayment>,
) -> Option<String> {
    let what = match &attempt.key {
        Some(key) => format!("key {key}"),
        None => format!("keyless payment of {} cents", attempt.amount_minor),
    };
    let ids: Vec<Uuid> = copies.iter().map(|p| p.id).collect();
    if copies.len() > 1 {
        let server_error = attempt.tries.iter().any(|seen| seen.starts_with('5'));
        let cause = if attempt.key.is_some() && server_error {
            " — issue 11 item 1: a 5xx released the key's claim, so a retry derived a new \
             payment id while the first attempt still committed"
        } else {
            ""
        };
        return Some(format!(
            "{what} has {} payments {ids:?} (tries: {}){cause}",
            copies.len(),
            history(&attempt.tries)
        ));
    }
    match &attempt.outcome {
        Outcome::Acknowledged(id) => match by_id.get(id) {
            Some(stored)
                if stored.amount_minor == attempt.amount_minor
                    && stored.loan_id == attempt.loan_id =>
            {
                None
            }
            Some(stored) => Some(format!("{what}: acknowledged {id} is stored as {stored:?}")),
            None => Some(format!(
                "{what}: acknowledged payment {id} is lost (tries: {})",
                history(&attempt.tries)
            )),
        },
        Outcome::Unknown if attempt.key.is_some() => Some(format!(
            "{what} never got a definite answer (tries: {})",
            history(&attempt.tries)
        )),
        Outcome::Unknown => None,
        Outcome::Refused { status, body } => Some(format!(
            "{what} refused with {status} (stored {ids:?}): {body}"
        )),
    }
}

/// Cents of an amount string with two decimals (`"12.34"`).
fn cents(amount: &Value) -> i64 {
    let text = amount.as_str().expect("amounts are strings");
    let (units, decimals) = text.split_once('.').expect("two decimals");
    assert_eq!(decimals.len(), 2, "{text}");
    units.parse::<i64>().expect("units") * 100 + decimals.parse::<i64>().expect("cents")
}

/// The figures of one loan against its payments, schedule and events.
fn loan_problems(
    loan: &Value,
    schedule: &Value,
    payments: &[&StoredPayment],
    events: &[&(Uuid, String, Value)],
) -> Vec<String> {
    let id = &loan["id"];
    let live: Vec<&&StoredPayment> = payments.iter().filter(|p| !p.reversed).collect();
    let paid: i64 = live.iter().map(|p| p.amount_minor).sum();
    let part = |of: fn(&StoredPayment) -> i64| live.iter().map(|p| of(p)).sum::<i64>();
    let installments = schedule["installments"].as_array().expect("installments");
    let scheduled = |field: &str| installments.iter().map(|i| cents(&i[field])).sum::<i64>();
    let version = loan["version"].as_u64().expect("version");
    let received: BTreeSet<Uuid> = events
        .iter()
        .filter(|(_, subject, _)| subject.ends_with(".payment.received"))
        .map(|(_, _, payload)| {
            payload["data"]["payment_id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let stored_ids: BTreeSet<Uuid> = payments.iter().map(|p| p.id).collect();
    let checks = [
        ("status", loan["status"] == "APPROVED"),
        (
            "total_paid = sum of amounts",
            cents(&loan["total_paid"]) == paid,
        ),
        (
            "allocations add up to the amounts",
            part(|p| p.fee_minor) + part(|p| p.interest_minor) + part(|p| p.principal_minor)
                == paid,
        ),
        (
            "principal_outstanding = principal - allocated principal",
            cents(&loan["principal_outstanding"])
                == cents(&loan["principal"]) - part(|p| p.principal_minor),
        ),
        (
            "interest_outstanding = scheduled - waived - allocated interest",
            cents(&loan["interest_outstanding"])
                == scheduled("interest")
                    - scheduled("interest_waived")
                    - part(|p| p.interest_minor),
        ),
        (
            "fees_outstanding = charged - allocated fees",
            cents(&loan["fees_outstanding"]) == scheduled("fee") - part(|p| p.fee_minor),
        ),
        ("schedule paid = sum of amounts", scheduled("paid") == paid),
        (
            "version = 2 + payments",
            version == 2 + payments.len() as u64,
        ),
        ("version = outbox events", version == events.len() as u64),
        (
            "one payment.received per payment",
            received == stored_ids && received.len() + 2 == events.len(),
        ),
    ];
    checks
        .iter()
        .filter(|(_, holds)| !holds)
        .map(|(rule, _)| {
            format!(
                "loan {id}: {rule} fails (loan {loan}, {} payments, {} events)",
                payments.len(),
                events.len()
            )
        })
        .collect()
}
