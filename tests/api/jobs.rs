//! The scheduled jobs: reminders, overdue status and late fees, once per
//! date however often (and however concurrently) they run. Time moves through
//! the app's manual clock; nothing waits for a cron.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use loan_tracker::accounts::Role;
use loan_tracker::jobs::runs::{self, Claim, Claimant};
use loan_tracker::jobs::{JobName, RunOutcome};
use loan_tracker::settings::jobs::CronSchedule;
use loan_tracker::store::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, eventually, spawn_app_at};

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// 01:00 UTC on `day`: after the date changed, before any cron default.
fn morning(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(1, 0, 0).unwrap())
}

/// Minor units of an API amount string ("12.34" → 1234).
fn minor(amount: &Value) -> i64 {
    let text = amount.as_str().expect("amounts are strings");
    let (major, fraction) = text.split_once('.').unwrap_or((text, "00"));
    major.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
}

struct Fixture {
    app: TestApp,
    owner: Session,
    admin: Session,
}

impl Fixture {
    async fn at(day: &str) -> Self {
        let app = spawn_app_at(morning(date(day)), &[]).await;
        let owner = app.register("borrower").await;
        let admin = app.user_with_role("admin", Role::Admin).await;
        Self { app, owner, admin }
    }

    /// A loan applied for and approved today, with `grace_days`.
    async fn approved_loan(&self, term_months: u32, grace_days: u32) -> Uuid {
        let body = json!({"principal": "1200.00", "annual_interest_rate": "12",
                          "term_months": term_months, "grace_days": grace_days});
        let response = self
            .app
            .post_json("/api/v1/loans", Some(&self.owner.access_token), &body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let loan_id: Uuid = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let path = format!("/api/v1/loans/{loan_id}/approve");
        let response = self
            .app
            .post_json(&path, Some(&self.admin.access_token), &json!({}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        loan_id
    }

    async fn run_job(&self, job: &str, body: &Value) -> reqwest::Response {
        self.app
            .post_json(
                &format!("/api/v1/admin/jobs/{job}/run"),
                Some(&self.admin.access_token),
                body,
            )
            .await
    }

    async fn run_ok(&self, job: &str) -> Value {
        let response = self.run_job(job, &json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "{job}");
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.app.get(path, Some(&self.owner.access_token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    async fn pay(&self, loan_id: Uuid, amount_minor: i64) {
        let amount = format!("{}.{:02}", amount_minor / 100, amount_minor % 100);
        let response = self
            .app
            .post_json(
                &format!("/api/v1/loans/{loan_id}/payments"),
                Some(&self.owner.access_token),
                &json!({ "amount": amount }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "paying {amount}");
    }
}

/// Notifications of `kind` for `user`: (created date, body), oldest first.
async fn notifications(db: &Db, user: Uuid, kind: &str) -> Vec<(NaiveDate, String)> {
    let rows: Vec<(DateTime<Utc>, String)> = with_pool!(db, |pool| sqlx::query_as(
        "select created_at, body from notifications where user_id = $1 and kind = $2 order by created_at, id"
    )
    .bind(user)
    .bind(kind)
    .fetch_all(pool)
    .await)
    .unwrap();
    rows.into_iter()
        .map(|(at, body)| (at.date_naive(), body))
        .collect()
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await)
    .unwrap()
}

#[tokio::test]
async fn unknown_jobs_are_404_and_future_dates_422() {
    let fixture = Fixture::at("2026-01-01").await;
    let response = fixture.run_job("nightly-backup", &json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = fixture
        .run_job("overdue", &json!({"as_of": "2026-01-02"}))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = fixture.run_job("overdue", &json!({"when": "now"})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // No body at all is fine: every field is optional.
    let response = fixture
        .app
        .client
        .post(fixture.app.url("/api/v1/admin/jobs/payment-reminders/run"))
        .bearer_auth(&fixture.admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["job"], "payment-reminders");
    assert_eq!(run["as_of"], "2026-01-01");
    assert_eq!(run["ran_now"], true);
    assert!(run["finished_at"].is_string(), "{run}");
}

#[tokio::test]
async fn overdue_run_twice_and_three_times_at_once_charges_and_notifies_once() {
    let fixture = Fixture::at("2026-01-01").await;
    let loan_id = fixture.approved_loan(12, 0).await;
    fixture.app.clock.set(morning(date("2026-02-05")));
    let body = json!({"as_of": "2026-02-05"});
    let (a, b, c) = tokio::join!(
        fixture.run_job("overdue", &body),
        fixture.run_job("overdue", &body),
        fixture.run_job("overdue", &body),
    );
    let mut ran_now = 0;
    for response in [a, b, c] {
        assert_eq!(response.status(), StatusCode::OK);
        let run: Value = response.json().await.unwrap();
        assert_eq!(run["processed"], 1, "{run}");
        ran_now += i32::from(run["ran_now"] == true);
    }
    assert_eq!(ran_now, 1, "exactly one of the three ran");
    let again: Value = fixture
        .run_job("overdue", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["ran_now"], false);
    // Even a run for the next date charges nothing new for the same installment.
    fixture.app.clock.set(morning(date("2026-02-06")));
    fixture.run_ok("overdue").await;
    let loan = fixture.get(&format!("/api/v1/loans/{loan_id}")).await;
    assert_eq!(loan["status"], "OVERDUE");
    assert_eq!(
        count(
            &fixture.app.db,
            "select count(*) from installments where late_fee_minor > 0"
        )
        .await,
        1
    );
    let user = fixture.owner.user_id;
    for kind in ["loan.overdue", "late_fee.applied"] {
        eventually(kind, Duration::from_secs(10), || async {
            (notifications(&fixture.app.db, user, kind).await.len() == 1).then_some(())
        })
        .await;
    }
    assert_eq!(
        count(
            &fixture.app.db,
            "select count(*) from job_runs where finished_at is not null"
        )
        .await,
        2
    );
}

/// Installments paid late in the simulation: (seq, days after the due date).
/// Grace is 5 days: 3 and 7 are charged a fee, 5 is not.
const LATE: [(usize, i64); 3] = [(3, 10), (5, 3), (7, 10)];
const GRACE_DAYS: i64 = 5;

#[tokio::test]
async fn a_year_long_loan_simulated_day_by_day_gets_reminders_notices_and_fees_exactly_right() {
    let fixture = Fixture::at("2026-01-15").await;
    let loan_id = fixture.approved_loan(12, 5).await;
    let schedule = fixture
        .get(&format!("/api/v1/loans/{loan_id}/schedule"))
        .await;
    let installments = schedule["installments"].as_array().unwrap().clone();
    let due: Vec<NaiveDate> = installments
        .iter()
        .map(|each| date(each["due_date"].as_str().unwrap()))
        .collect();
    let pay_day = |seq: usize| {
        let late = LATE
            .iter()
            .find(|(late_seq, _)| *late_seq == seq)
            .map_or(0, |(_, days)| *days);
        due[seq - 1] + chrono::Duration::days(late)
    };
    let mut paid_through = 0usize;
    let mut day = date("2026-01-15");
    let end = date("2027-03-15");
    while day <= end {
        fixture.app.clock.set(morning(day));
        if paid_through < due.len() && pay_day(paid_through + 1) == day {
            let schedule = fixture
                .get(&format!("/api/v1/loans/{loan_id}/schedule"))
                .await;
            let row = &schedule["installments"][paid_through];
            let owed = minor(&row["principal"]) + minor(&row["interest"]) + minor(&row["fee"])
                - minor(&row["paid"]);
            fixture.pay(loan_id, owed).await;
            paid_through += 1;
        }
        fixture.run_ok("overdue").await;
        fixture.run_ok("payment-reminders").await;
        let loan = fixture.get(&format!("/api/v1/loans/{loan_id}")).await;
        let late = due
            .iter()
            .take(due.len())
            .enumerate()
            .any(|(index, due_date)| index >= paid_through && *due_date < day);
        let expected = if paid_through == due.len() {
            "PAID"
        } else if late {
            "OVERDUE"
        } else {
            "APPROVED"
        };
        assert_eq!(loan["status"], expected, "status on {day}");
        day = day.succ_opt().unwrap();
    }
    check_simulation(&fixture, loan_id, &due).await;
}

async fn check_simulation(fixture: &Fixture, loan_id: Uuid, due: &[NaiveDate]) {
    let db = &fixture.app.db;
    let user = fixture.owner.user_id;
    let days = |n: i64| chrono::Duration::days(n);
    let in_3: Vec<NaiveDate> = notifications(db, user, "reminder.due_in_3_days")
        .await
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    let tomorrow: Vec<NaiveDate> = notifications(db, user, "reminder.due_tomorrow")
        .await
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(in_3, due.iter().map(|d| *d - days(3)).collect::<Vec<_>>());
    assert_eq!(
        tomorrow,
        due.iter().map(|d| *d - days(1)).collect::<Vec<_>>()
    );
    // The day each late installment became overdue (the loan was current before each).
    let overdue_days: Vec<String> = LATE
        .iter()
        .map(|(seq, _)| (due[seq - 1] + days(1)).to_string())
        .collect();
    let overdue_notices = eventually("loan.overdue notices", Duration::from_secs(20), || async {
        let notices = notifications(db, user, "loan.overdue").await;
        (notices.len() == LATE.len()).then_some(notices)
    })
    .await;
    for ((_, body), day) in overdue_notices.iter().zip(&overdue_days) {
        assert!(body.contains(&format!("as of {day}")), "{body} / {day}");
    }
    // Weekly while overdue: day 8 of the 10-day lates only.
    let weekly: Vec<NaiveDate> = notifications(db, user, "overdue.weekly")
        .await
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(weekly, [due[2] + days(8), due[6] + days(8)]);
    // Fees: only past grace, once per installment, 3 % of the installment.
    let schedule = fixture
        .get(&format!("/api/v1/loans/{loan_id}/schedule"))
        .await;
    let rows = schedule["installments"].as_array().unwrap();
    let mut expected_total = 0;
    for (index, row) in rows.iter().enumerate() {
        let scheduled = minor(&row["principal"]) + minor(&row["interest"]);
        let full_fee = (scheduled * 3 + 50) / 100;
        let fee = minor(&row["fee"]);
        match index + 1 {
            // The whole installment was unpaid when each fee was charged (the
            // 3.20 paid to installment 3's fee did not pay installment 7).
            3 | 7 => assert_eq!(fee, full_fee, "{row}"),
            _ => assert_eq!(fee, 0, "{row}"),
        }
        assert_eq!(row["status"], "PAID");
        expected_total += scheduled + minor(&row["fee"]);
    }
    let fee_events = eventually(
        "late_fee.applied notices",
        Duration::from_secs(20),
        || async {
            let notices = notifications(db, user, "late_fee.applied").await;
            (notices.len() == 2).then_some(notices)
        },
    )
    .await;
    for ((_, body), seq) in fee_events.iter().zip([3usize, 7]) {
        let day = due[seq - 1] + days(GRACE_DAYS + 1);
        assert!(body.contains(&format!("on {day}")), "{body} / {day}");
    }
    let loan = fixture.get(&format!("/api/v1/loans/{loan_id}")).await;
    assert_eq!(loan["status"], "PAID");
    assert_eq!(minor(&loan["total_paid"]), expected_total);
    assert_eq!(minor(&loan["total_outstanding"]), 0);
}

/// Copies `template` (an approved loan) `copies` times behind the API, in a
/// few transactions: far faster than creating each through HTTP.
async fn clone_loans(db: &Db, template: Uuid, copies: usize) {
    const LOAN_COLUMNS: &str = "user_id, status, currency, principal_minor, annual_interest_rate, term_months, repayment_method, late_fee_rate, grace_days, first_due_date, purpose, applied_on, disbursed_on, rejection_reason, version, total_paid_minor, principal_outstanding_minor, interest_outstanding_minor, fees_outstanding_minor, next_due_date, created_at, updated_at";
    const INSTALLMENT_COLUMNS: &str = "seq, due_date, principal_minor, interest_minor, late_fee_minor, late_fee_assessed_on, fee_paid_minor, interest_paid_minor, principal_paid_minor, interest_waived_minor, unpaid_minor";
    let loan_sql = format!(
        "insert into loans (id, {LOAN_COLUMNS}) select $1, {LOAN_COLUMNS} from loans where id = $2"
    );
    let installment_sql = format!(
        "insert into installments (loan_id, {INSTALLMENT_COLUMNS}) select $1, {INSTALLMENT_COLUMNS} from installments where loan_id = $2"
    );
    for chunk in (0..copies).collect::<Vec<_>>().chunks(1000) {
        let mut tx = db.begin().await.unwrap();
        for _ in chunk {
            let id = Uuid::now_v7();
            for sql in [&loan_sql, &installment_sql] {
                with_tx!(&mut tx, |conn| sqlx::query(sqlx::AssertSqlSafe(
                    sql.clone()
                ))
                .bind(id)
                .bind(template)
                .execute(conn)
                .await
                .map(drop))
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }
}

async fn many_overdue_loans_get_exactly_the_expected_fees(loans: usize) {
    let fixture = Fixture::at("2026-01-01").await;
    let template = fixture.approved_loan(3, 0).await;
    clone_loans(&fixture.app.db, template, loans - 1).await;
    // Two installments (Feb 1, Mar 1) are past due on Mar 10.
    fixture.app.clock.set(morning(date("2026-03-10")));
    let started = Instant::now();
    let run = fixture.run_ok("overdue").await;
    println!(
        "overdue run over {loans} loans took {:?}",
        started.elapsed()
    );
    assert_eq!(run["processed"], loans);
    assert_eq!(run["errors"], 0);
    let charged = count(
        &fixture.app.db,
        "select count(*) from installments where late_fee_minor > 0",
    )
    .await;
    assert_eq!(charged, i64::try_from(loans * 2).unwrap());
    let overdue = count(
        &fixture.app.db,
        "select count(*) from loans where status = 'OVERDUE'",
    )
    .await;
    assert_eq!(overdue, i64::try_from(loans).unwrap());
}

/// About 20 s on SQLite and 50 s on PostgreSQL + NATS in a debug build on 2 cores.
#[tokio::test]
async fn one_overdue_run_over_10000_loans_applies_exactly_the_expected_fees() {
    many_overdue_loans_get_exactly_the_expected_fees(10_000).await;
}

#[tokio::test]
async fn a_missed_day_is_caught_up_on_the_next_start_oldest_first() {
    let fixture = Fixture::at("2026-03-01").await;
    let response = fixture.run_job("overdue", &json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Down for three days: at 07:00 on the 4th, the 00:30 run of the 4th is due too.
    fixture
        .app
        .clock
        .set(Utc.with_ymd_and_hms(2026, 3, 4, 7, 0, 0).unwrap());
    let schedule = CronSchedule::parse("0 30 0 * * *").unwrap();
    let ran = fixture
        .app
        .jobs
        .catch_up(JobName::Overdue, &schedule)
        .await
        .unwrap();
    assert_eq!(ran, 3);
    let dates: Vec<NaiveDate> = with_pool!(&fixture.app.db, |pool| sqlx::query_scalar(
        "select as_of from job_runs where job = 'overdue' order by started_at, as_of"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(
        dates,
        [
            date("2026-03-01"),
            date("2026-03-02"),
            date("2026-03-03"),
            date("2026-03-04")
        ]
    );
    assert_eq!(
        fixture
            .app
            .jobs
            .catch_up(JobName::Overdue, &schedule)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_run_claimed_by_one_instance_is_busy_for_another_until_finished() {
    let (db, _dir) = crate::helpers::fresh_sqlite().await;
    let mut databases = vec![db];
    databases.extend(crate::helpers::fresh_postgres().await);
    let as_of = date("2026-03-01");
    let now = Utc::now();
    for db in databases {
        let claimant = |owner: &'static str| Claimant {
            owner,
            now,
            lease_until: now + chrono::Duration::minutes(10),
            takeover: false,
        };
        let Claim::Started(mut record) = runs::claim(&db, JobName::Overdue, as_of, claimant("a"))
            .await
            .unwrap()
        else {
            panic!("the first claim starts the run");
        };
        assert!(matches!(
            runs::claim(&db, JobName::Overdue, as_of, claimant("b"))
                .await
                .unwrap(),
            Claim::Busy(_)
        ));
        record.finished_at = Some(now);
        assert!(runs::finish(&db, &record).await.unwrap());
        assert!(matches!(
            runs::claim(&db, JobName::Overdue, as_of, claimant("b"))
                .await
                .unwrap(),
            Claim::Finished(_)
        ));
        if matches!(db, Db::Postgres(_)) {
            let held = loan_tracker::jobs::lock::RunLock::try_acquire(&db, JobName::Overdue, as_of)
                .await
                .unwrap()
                .expect("free");
            let second =
                loan_tracker::jobs::lock::RunLock::try_acquire(&db, JobName::Overdue, as_of)
                    .await
                    .unwrap();
            assert!(
                second.is_none(),
                "the advisory lock excludes a second holder"
            );
            held.release().await;
        }
    }
}

#[tokio::test]
async fn a_run_in_progress_elsewhere_is_not_run_again_here() {
    let fixture = Fixture::at("2026-03-01").await;
    let now = fixture.app.clock.now();
    let claimant = Claimant {
        owner: "other-instance",
        now,
        lease_until: now + chrono::Duration::minutes(10),
        takeover: false,
    };
    runs::claim(
        &fixture.app.db,
        JobName::PaymentReminders,
        date("2026-03-01"),
        claimant,
    )
    .await
    .unwrap();
    let outcome = fixture
        .app
        .jobs
        .run(JobName::PaymentReminders, None)
        .await
        .unwrap();
    // PostgreSQL: the advisory lock is free (the "other instance" is gone), so this one takes over.
    match &fixture.app.db {
        Db::Sqlite(_) => assert!(matches!(outcome, RunOutcome::InProgress(_)), "{outcome:?}"),
        Db::Postgres(_) => assert!(matches!(outcome, RunOutcome::Ran(_)), "{outcome:?}"),
    }
}

/// Advisory locks granted in the current database (PostgreSQL).
async fn advisory_locks_held(db: &Db) -> i64 {
    with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from pg_locks where locktype = 'advisory' and granted \
         and database = (select oid from pg_database where datname = current_database())"
    )
    .fetch_one(pool)
    .await)
    .expect("pg_locks is readable")
}

#[tokio::test]
async fn a_lock_attempt_cancelled_after_the_server_granted_it_leaves_no_lock_behind() {
    let Some(db) = crate::helpers::fresh_postgres().await else {
        eprintln!("TEST_DATABASE_URL not set: skipped (advisory locks are PostgreSQL's)");
        return;
    };
    let as_of = date("2026-03-01");
    let mut cancelled_mid_flight = false;
    for _ in 0..50 {
        let mut attempt = Box::pin(loan_tracker::jobs::lock::RunLock::try_acquire(
            &db,
            JobName::Overdue,
            as_of,
        ));
        // Poll the attempt step by step; once the server shows the lock
        // granted while the attempt has not read the answer, drop it there.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if futures::poll!(attempt.as_mut()).is_ready() {
                break;
            }
            if advisory_locks_held(&db).await > 0 {
                cancelled_mid_flight = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(attempt);
        if cancelled_mid_flight {
            break;
        }
        eventually(
            "a completed attempt's lock to go",
            Duration::from_secs(5),
            || async { (advisory_locks_held(&db).await == 0).then_some(()) },
        )
        .await;
    }
    assert!(
        cancelled_mid_flight,
        "never caught the attempt between grant and answer"
    );
    eventually(
        "the cancelled attempt's lock to go",
        Duration::from_secs(5),
        || async { (advisory_locks_held(&db).await == 0).then_some(()) },
    )
    .await;
    let lock = loan_tracker::jobs::lock::RunLock::try_acquire(&db, JobName::Overdue, as_of)
        .await
        .unwrap();
    assert!(lock.is_some(), "the run's lock is free again");
    lock.expect("taken").release().await;
}
