//! `commit_together`: the turns of several loan actors in one transaction —
//! each loan row under its version check, then for all of them at once the
//! installments they changed, the new or changed payments and one outbox row
//! per event, in multi-row statements.

use std::collections::{BTreeSet, HashMap, HashSet};

use actors::core::{Installment, LoanEvent, LoanSnapshot, PaymentId, PaymentRecord};
use actors::store::{LoanCommit, LoanStoreError, ReplyRecord};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::LineJson;
use super::seam_error;
use crate::events::loan::loan_event_outbox;
use crate::store::batch::rows_per_statement;
use crate::store::idempotency;
use crate::store::outbox::{self, OutboxEvent};
use crate::store::with_tx;
use crate::store::{Db, StoreError, Tx};

/// The denormalized figures kept on the loan row, derived from the snapshot
/// with the same rules as the core's `Loan::figures`.
struct RowFigures {
    total_paid_minor: i64,
    principal_outstanding_minor: i64,
    interest_outstanding_minor: i64,
    fees_outstanding_minor: i64,
    next_due_date: Option<NaiveDate>,
    /// `loans.overdue_after`: the core's rule, so list filters agree with the loan.
    overdue_after: Option<NaiveDate>,
}

impl RowFigures {
    fn of(snapshot: &LoanSnapshot) -> RowFigures {
        let sum = |part: fn(&Installment) -> i64| snapshot.installments.iter().map(part).sum();
        RowFigures {
            total_paid_minor: snapshot.total_paid_minor(),
            principal_outstanding_minor: sum(Installment::principal_unpaid_minor),
            interest_outstanding_minor: sum(Installment::interest_unpaid_minor),
            fees_outstanding_minor: sum(Installment::fee_unpaid_minor),
            next_due_date: snapshot
                .installments
                .iter()
                .find(|installment| installment.unpaid_minor() > 0)
                .map(|installment| installment.due_date),
            overdue_after: snapshot.overdue_after(),
        }
    }
}

/// Writes `commits` (of different loans) in one transaction and returns
/// each one's new version, or its `VersionConflict` when another writer got
/// there first — a conflict writes nothing of that loan and fails no other.
///
/// Any other error fails the whole group, nothing written; it names the first
/// loan, so callers retry a larger group one commit at a time to learn whose
/// it is.
pub(super) async fn commit_together(
    db: &Db,
    commits: &[&LoanCommit],
) -> Result<Vec<Result<u64, LoanStoreError>>, LoanStoreError> {
    let Some(first) = commits.first() else {
        return Ok(Vec::new());
    };
    let fail = |error: StoreError| seam_error(error, first.loan_id);
    let mut tx = db.begin().await.map_err(fail)?;
    let updated = update_loan_rows_together(&mut tx, commits).await?;
    let mut outcomes = Vec::with_capacity(commits.len());
    let mut landed = Vec::with_capacity(commits.len());
    for &commit in commits {
        let written = match &updated {
            Some(together) if together.batched.contains(&commit.loan_id.as_uuid()) => {
                together.updated.contains(&commit.loan_id.as_uuid())
            }
            _ => write_loan_row(&mut tx, commit).await?,
        };
        if written {
            landed.push(commit);
            outcomes.push(Ok(commit.new_version()));
        } else {
            outcomes.push(Err(LoanStoreError::VersionConflict {
                loan_id: commit.loan_id,
                expected: commit.expected_version,
            }));
        }
    }
    let kept: Vec<&LoanCommit> = landed
        .iter()
        .copied()
        .filter(|commit| !deletes_the_loan(commit))
        .collect();
    write_installments(&mut tx, &kept).await.map_err(fail)?;
    write_payments(&mut tx, &kept).await?;
    let events: Vec<OutboxEvent> = landed
        .iter()
        .flat_map(|commit| {
            commit
                .events
                .iter()
                .map(|record| loan_event_outbox(&commit.snapshot, record))
        })
        .collect();
    outbox::insert_all(&mut tx, &events).await.map_err(fail)?;
    keep_replies(&mut tx, &landed).await?;
    tx.commit().await.map_err(fail)?;
    Ok(outcomes)
}

/// Writes the answers the landed commits keep; a key another request took
/// first fails the group (`ReplyTaken`), so it is retried one commit at a
/// time and fails alone.
async fn keep_replies(tx: &mut Tx, landed: &[&LoanCommit]) -> Result<(), LoanStoreError> {
    let replies: Vec<ReplyRecord> = landed
        .iter()
        .flat_map(|commit| commit.replies.iter().cloned())
        .collect();
    if replies.is_empty() {
        return Ok(());
    }
    let written = idempotency::keep_all(tx, &replies)
        .await
        .map_err(|error| seam_error(error, landed[0].loan_id))?;
    if written == replies.len() as u64 {
        return Ok(());
    }
    Err(LoanStoreError::ReplyTaken {
        key: replies[0].key.clone(),
    })
}

fn deletes_the_loan(commit: &LoanCommit) -> bool {
    commit
        .events
        .iter()
        .any(|record| matches!(record.event, LoanEvent::Deleted { .. }))
}

/// True for a commit that updates an existing loan row (not a new loan, not a deletion).
fn is_plain_update(commit: &LoanCommit) -> bool {
    commit.expected_version.is_some() && !deletes_the_loan(commit)
}

/// On PostgreSQL, updates the rows of every plain update in the group with
/// one statement (`unnest` of one array per column) under each row's
/// version check; `None` on SQLite, whose statements cost no round trip, so
/// each row is written alone. A loan with two commits in the group (a stale
/// writer beside its actor) is left out, for one statement would match its
/// row once for both: its rows are written one at a time.
async fn update_loan_rows_together(
    tx: &mut Tx,
    commits: &[&LoanCommit],
) -> Result<Option<UpdatedTogether>, LoanStoreError> {
    let Tx::Postgres(tx) = tx else {
        return Ok(None);
    };
    let mut seen = HashMap::<Uuid, usize>::new();
    for commit in commits {
        *seen.entry(commit.loan_id.as_uuid()).or_default() += 1;
    }
    let plain: Vec<&LoanCommit> = commits
        .iter()
        .copied()
        .filter(|commit| is_plain_update(commit) && seen[&commit.loan_id.as_uuid()] == 1)
        .collect();
    let batched: HashSet<Uuid> = plain
        .iter()
        .map(|commit| commit.loan_id.as_uuid())
        .collect();
    let Some(first) = plain.first() else {
        return Ok(Some(UpdatedTogether {
            batched,
            updated: HashSet::new(),
        }));
    };
    let mut columns = UpdateColumns::default();
    for commit in &plain {
        columns.push(commit)?;
    }
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "update loans as l set status = u.status, disbursed_on = u.disbursed_on, \
         rejection_reason = u.rejection_reason, version = u.new_version, \
         total_paid_minor = u.total_paid, principal_outstanding_minor = u.principal, \
         interest_outstanding_minor = u.interest, fees_outstanding_minor = u.fees, \
         next_due_date = u.next_due, updated_at = u.updated_at, \
         overdue_after = u.overdue_after \
         from unnest($1::uuid[], $2::bigint[], $3::text[], $4::date[], $5::text[], \
         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::date[], \
         $12::timestamptz[], $13::date[]) as u(id, expected, status, disbursed_on, \
         rejection_reason, new_version, total_paid, principal, interest, fees, next_due, \
         updated_at, overdue_after) where l.id = u.id and l.version = u.expected returning l.id",
    )
    .bind(&columns.id)
    .bind(&columns.expected)
    .bind(&columns.status)
    .bind(&columns.disbursed_on)
    .bind(&columns.rejection_reason)
    .bind(&columns.new_version)
    .bind(&columns.total_paid)
    .bind(&columns.principal)
    .bind(&columns.interest)
    .bind(&columns.fees)
    .bind(&columns.next_due)
    .bind(&columns.updated_at)
    .bind(&columns.overdue_after)
    .fetch_all(&mut **tx)
    .await
    .map_err(|error| seam_error(error.into(), first.loan_id))?;
    Ok(Some(UpdatedTogether {
        batched,
        updated: updated.into_iter().collect(),
    }))
}

/// What [`update_loan_rows_together`] did.
struct UpdatedTogether {
    /// The loans it tried.
    batched: HashSet<Uuid>,
    /// Those whose version was as expected.
    updated: HashSet<Uuid>,
}

/// The columns of [`update_loan_rows_together`], one array each.
#[derive(Default)]
struct UpdateColumns {
    id: Vec<Uuid>,
    expected: Vec<i64>,
    status: Vec<&'static str>,
    disbursed_on: Vec<Option<NaiveDate>>,
    rejection_reason: Vec<Option<String>>,
    new_version: Vec<i64>,
    total_paid: Vec<i64>,
    principal: Vec<i64>,
    interest: Vec<i64>,
    fees: Vec<i64>,
    next_due: Vec<Option<NaiveDate>>,
    updated_at: Vec<DateTime<Utc>>,
    overdue_after: Vec<Option<NaiveDate>>,
}

impl UpdateColumns {
    fn push(&mut self, commit: &LoanCommit) -> Result<(), LoanStoreError> {
        let versions = RowVersions::of(commit)?;
        let snapshot = &commit.snapshot;
        let figures = RowFigures::of(snapshot);
        self.id.push(commit.loan_id.as_uuid());
        self.expected.push(versions.expected.unwrap_or_default());
        self.status.push(snapshot.status.as_str());
        self.disbursed_on.push(snapshot.disbursed_on);
        self.rejection_reason
            .push(snapshot.rejection_reason.clone());
        self.new_version.push(versions.new);
        self.total_paid.push(figures.total_paid_minor);
        self.principal.push(figures.principal_outstanding_minor);
        self.interest.push(figures.interest_outstanding_minor);
        self.fees.push(figures.fees_outstanding_minor);
        self.next_due.push(figures.next_due_date);
        self.updated_at.push(versions.now);
        self.overdue_after.push(figures.overdue_after);
        Ok(())
    }
}

/// A commit's versions as stored (`i64`) and the time its row is stamped with.
struct RowVersions {
    expected: Option<i64>,
    new: i64,
    now: DateTime<Utc>,
}

impl RowVersions {
    fn of(commit: &LoanCommit) -> Result<RowVersions, LoanStoreError> {
        let as_i64 = |version: u64| {
            i64::try_from(version).map_err(|_| {
                seam_error(
                    StoreError::Corrupt(format!("version {version} out of range")),
                    commit.loan_id,
                )
            })
        };
        Ok(RowVersions {
            expected: commit.expected_version.map(as_i64).transpose()?,
            new: as_i64(commit.new_version())?,
            // The clock is only a fallback for a turn that produced no event.
            now: commit
                .events
                .last()
                .map_or_else(Utc::now, |record| record.occurred_at),
        })
    }
}

/// Writes the loan row under the version check: inserts it (no expected
/// version), deletes it (a `loan.deleted` commit; installments cascade, and
/// the `payments` foreign key refuses a loan that moved money — the core
/// never deletes one), or updates it. False when the row was not as
/// expected (another writer got there first).
async fn write_loan_row(tx: &mut Tx, commit: &LoanCommit) -> Result<bool, LoanStoreError> {
    let loan_id = commit.loan_id;
    let RowVersions { expected, new, now } = RowVersions::of(commit)?;
    let written = match expected {
        None => insert_loan_row(tx, &commit.snapshot, new, now).await,
        Some(expected) if deletes_the_loan(commit) => with_tx!(tx, |conn| sqlx::query(
            "delete from loans where id = $1 and version = $2"
        )
        .bind(loan_id.as_uuid())
        .bind(expected)
        .execute(conn)
        .await
        .map(|result| result.rows_affected()))
        .map_err(StoreError::from),
        Some(expected) => update_loan_row(tx, &commit.snapshot, (expected, new), now).await,
    };
    Ok(written.map_err(|error| seam_error(error, loan_id))? == 1)
}

/// Inserts a new loan row at `version`; returns the rows inserted (none
/// when the id exists).
async fn insert_loan_row(
    tx: &mut Tx,
    snapshot: &LoanSnapshot,
    version: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let figures = RowFigures::of(snapshot);
    let terms = &snapshot.terms;
    let inserted = with_tx!(tx, |conn| {
        sqlx::query(
            "insert into loans (id, user_id, status, currency, principal_minor, \
             annual_interest_rate, term_months, repayment_method, late_fee_rate, grace_days, \
             first_due_date, purpose, applied_on, disbursed_on, rejection_reason, version, \
             total_paid_minor, principal_outstanding_minor, interest_outstanding_minor, \
             fees_outstanding_minor, next_due_date, created_at, updated_at, \
             overdue_after, repayment_frequency, day_count) values ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22, \
             $23, $24, $25) on conflict (id) do nothing",
        )
        .bind(snapshot.loan_id.as_uuid())
        .bind(snapshot.user_id.as_uuid())
        .bind(snapshot.status.as_str())
        .bind(terms.currency().code())
        .bind(terms.principal().minor())
        .bind(terms.annual_rate().to_string())
        .bind(i32::from(terms.term().get()))
        .bind(terms.method().as_str())
        .bind(terms.late_fee_rate().to_string())
        .bind(i32::from(terms.grace_days().get()))
        .bind(terms.first_due_date())
        .bind(terms.purpose())
        .bind(snapshot.applied_on)
        .bind(snapshot.disbursed_on)
        .bind(snapshot.rejection_reason.as_deref())
        .bind(version)
        .bind(figures.total_paid_minor)
        .bind(figures.principal_outstanding_minor)
        .bind(figures.interest_outstanding_minor)
        .bind(figures.fees_outstanding_minor)
        .bind(figures.next_due_date)
        .bind(now)
        .bind(figures.overdue_after)
        .bind(terms.frequency().as_str())
        .bind(terms.day_count().as_str())
        .execute(conn)
        .await
        .map(|result| result.rows_affected())
    })?;
    Ok(inserted)
}

/// Updates the mutable columns where the version is still `expected`; returns the rows changed.
async fn update_loan_row(
    tx: &mut Tx,
    snapshot: &LoanSnapshot,
    (expected, new): (i64, i64),
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let figures = RowFigures::of(snapshot);
    let updated = with_tx!(tx, |conn| sqlx::query(
        "update loans set status = $3, disbursed_on = $4, rejection_reason = $5, \
         version = $6, total_paid_minor = $7, principal_outstanding_minor = $8, \
         interest_outstanding_minor = $9, fees_outstanding_minor = $10, next_due_date = $11, \
         updated_at = $12, overdue_after = $13 where id = $1 and version = $2"
    )
    .bind(snapshot.loan_id.as_uuid())
    .bind(expected)
    .bind(snapshot.status.as_str())
    .bind(snapshot.disbursed_on)
    .bind(snapshot.rejection_reason.as_deref())
    .bind(new)
    .bind(figures.total_paid_minor)
    .bind(figures.principal_outstanding_minor)
    .bind(figures.interest_outstanding_minor)
    .bind(figures.fees_outstanding_minor)
    .bind(figures.next_due_date)
    .bind(now)
    .bind(figures.overdue_after)
    .execute(conn)
    .await
    .map(|result| result.rows_affected()))?;
    Ok(updated)
}

/// Upserts the installments the commits changed (a new schedule: all of
/// them, at most 480), as many rows per statement as the bind limit allows.
async fn write_installments(tx: &mut Tx, commits: &[&LoanCommit]) -> Result<(), StoreError> {
    const COLUMNS: usize = 12;
    let changed: Vec<(Uuid, &Installment)> = commits
        .iter()
        .flat_map(|commit| {
            commit
                .snapshot
                .installments
                .iter()
                .filter(|installment| commit.installments.includes(installment.seq))
                .map(|installment| (commit.loan_id.as_uuid(), installment))
        })
        .collect();
    for chunk in changed.chunks(rows_per_statement(COLUMNS)) {
        with_tx!(tx, |conn| {
            let mut builder = sqlx::QueryBuilder::new(
                "insert into installments (loan_id, seq, due_date, principal_minor, \
                 interest_minor, late_fee_minor, late_fee_assessed_on, fee_paid_minor, \
                 interest_paid_minor, principal_paid_minor, interest_waived_minor, \
                 unpaid_minor) ",
            );
            builder.push_values(chunk, |mut row, (loan_id, installment)| {
                row.push_bind(*loan_id)
                    .push_bind(i32::from(installment.seq))
                    .push_bind(installment.due_date)
                    .push_bind(installment.principal.minor())
                    .push_bind(installment.interest.minor())
                    .push_bind(installment.late_fee.minor())
                    .push_bind(installment.late_fee_assessed_on)
                    .push_bind(installment.fee_paid.minor())
                    .push_bind(installment.interest_paid.minor())
                    .push_bind(installment.principal_paid.minor())
                    .push_bind(installment.interest_waived.minor())
                    .push_bind(installment.unpaid_minor());
            });
            builder.push(
                " on conflict (loan_id, seq) do update \
                 set late_fee_minor = excluded.late_fee_minor, \
                 late_fee_assessed_on = excluded.late_fee_assessed_on, \
                 fee_paid_minor = excluded.fee_paid_minor, \
                 interest_paid_minor = excluded.interest_paid_minor, \
                 principal_paid_minor = excluded.principal_paid_minor, \
                 interest_waived_minor = excluded.interest_waived_minor, \
                 unpaid_minor = excluded.unpaid_minor",
            );
            // One text per row count: not worth a prepared statement each.
            builder
                .build()
                .persistent(false)
                .execute(conn)
                .await
                .map(drop)
        })?;
    }
    Ok(())
}

/// The payments this commit's events created, and those whose allocation or
/// reversal they changed (created ones excluded: they are inserted final).
fn touched_payments<'a>(
    events: impl Iterator<Item = &'a LoanEvent>,
) -> (BTreeSet<PaymentId>, BTreeSet<PaymentId>) {
    let mut created = BTreeSet::new();
    let mut changed = BTreeSet::new();
    for event in events {
        let reallocations = match event {
            LoanEvent::PaymentApplied {
                payment,
                reallocations,
            } => {
                created.insert(payment.payment_id);
                reallocations
            }
            LoanEvent::PaymentReversed {
                payment_id,
                reallocations,
                ..
            } => {
                changed.insert(*payment_id);
                reallocations
            }
            LoanEvent::LateFeesAssessed { reallocations, .. } => reallocations,
            _ => continue,
        };
        changed.extend(
            reallocations
                .iter()
                .map(|reallocation| reallocation.payment_id),
        );
    }
    let changed = changed.difference(&created).copied().collect();
    (created, changed)
}

/// A payment row to insert.
struct NewPayment<'a> {
    loan_id: Uuid,
    payment: &'a PaymentRecord,
    arrival_seq: i32,
    created_at: DateTime<Utc>,
}

/// Inserts the payments the commits created (a reused id or reference is
/// `Duplicate`) and rewrites the allocation and reversal of changed ones,
/// from the snapshots.
async fn write_payments(tx: &mut Tx, commits: &[&LoanCommit]) -> Result<(), LoanStoreError> {
    let mut created_rows = Vec::new();
    for commit in commits {
        let (created, changed) = touched_payments(commit.events.iter().map(|record| &record.event));
        for (index, payment) in commit.snapshot.payments.iter().enumerate() {
            if created.contains(&payment.payment_id) {
                let created_at = commit
                    .events
                    .iter()
                    .find(|record| matches!(&record.event, LoanEvent::PaymentApplied { payment: applied, .. } if applied.payment_id == payment.payment_id))
                    .map_or_else(Utc::now, |record| record.occurred_at);
                created_rows.push(NewPayment {
                    loan_id: commit.loan_id.as_uuid(),
                    payment,
                    arrival_seq: i32::try_from(commit.snapshot.folded.count() + index + 1)
                        .expect("payments per loan are bounded"),
                    created_at,
                });
            } else if changed.contains(&payment.payment_id) {
                update_payment(tx, commit, payment)
                    .await
                    .map_err(|error| seam_error(error, commit.loan_id))?;
            }
        }
    }
    insert_payments(tx, &created_rows)
        .await
        .map_err(|error| match error {
            StoreError::Duplicate { constraint } => LoanStoreError::Duplicate {
                what: format!("payment id or reference ({constraint})"),
            },
            other => seam_error(other, commits[0].loan_id),
        })
}

async fn insert_payments(tx: &mut Tx, rows: &[NewPayment<'_>]) -> Result<(), StoreError> {
    const COLUMNS: usize = 15;
    for chunk in rows.chunks(rows_per_statement(COLUMNS)) {
        let lines: Vec<Vec<LineJson>> = chunk
            .iter()
            .map(|row| {
                row.payment
                    .allocation
                    .lines
                    .iter()
                    .map(LineJson::from)
                    .collect()
            })
            .collect();
        with_tx!(tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "insert into payments (id, loan_id, arrival_seq, amount_minor, currency, \
                 paid_on, reference, fee_minor, interest_minor, principal_minor, \
                 interest_waived_minor, allocation_lines, reversed_on, created_at, note) ",
            );
            insert.push_values(chunk.iter().zip(&lines), |mut values, (row, lines)| {
                let payment = row.payment;
                let allocation = &payment.allocation;
                values
                    .push_bind(payment.payment_id.as_uuid())
                    .push_bind(row.loan_id)
                    .push_bind(row.arrival_seq)
                    .push_bind(payment.amount.minor())
                    .push_bind(payment.amount.currency().code())
                    .push_bind(payment.paid_on)
                    .push_bind(payment.reference.as_deref())
                    .push_bind(allocation.fee.minor())
                    .push_bind(allocation.interest.minor())
                    .push_bind(allocation.principal.minor())
                    .push_bind(allocation.interest_waived.minor())
                    .push_bind(Json(lines))
                    .push_bind(payment.reversed_on)
                    .push_bind(row.created_at)
                    .push_bind(payment.note.as_deref());
            });
            insert
                .build()
                .persistent(false)
                .execute(conn)
                .await
                .map(drop)
        })?;
    }
    Ok(())
}

async fn update_payment(
    tx: &mut Tx,
    commit: &LoanCommit,
    payment: &PaymentRecord,
) -> Result<(), StoreError> {
    let allocation = &payment.allocation;
    let lines: Vec<LineJson> = allocation.lines.iter().map(LineJson::from).collect();
    let updated = with_tx!(tx, |conn| sqlx::query(
        "update payments set fee_minor = $3, interest_minor = $4, principal_minor = $5, \
         interest_waived_minor = $6, allocation_lines = $7, reversed_on = $8 \
         where id = $1 and loan_id = $2"
    )
    .bind(payment.payment_id.as_uuid())
    .bind(commit.loan_id.as_uuid())
    .bind(allocation.fee.minor())
    .bind(allocation.interest.minor())
    .bind(allocation.principal.minor())
    .bind(allocation.interest_waived.minor())
    .bind(Json(&lines))
    .bind(payment.reversed_on)
    .execute(conn)
    .await
    .map(|result| result.rows_affected()))?;
    if updated != 1 {
        return Err(StoreError::Corrupt(format!(
            "payment {} changed by a commit but not stored",
            payment.payment_id
        )));
    }
    Ok(())
}
