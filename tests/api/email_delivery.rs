//! E-mail delivery across failures and instances (issue 11 item 9): a mail
//! whose outcome could not be recorded is not sent again, every copy carries
//! the Message-ID derived from its notification, and a claimed or sent mail
//! is left alone by another instance's start.

use std::time::Duration;

use chrono::Utc;
use loan_tracker::notifications::delivery::message_id;
use loan_tracker::notifications::store::{self, NewNotification};
use loan_tracker::store::Db;
use serde_json::json;
use tempfile::TempDir;
use uuid::Uuid;

use crate::bus::shared_database;
use crate::helpers::{Session, TestApp, eventually, execute, spawn_app_with, test_namespace};
use crate::smtp::SmtpSink;

const DEADLINE: Duration = Duration::from_secs(30);

/// Two apps on one database and one SMTP sink, started one after the other.
struct Shared {
    sink: SmtpSink,
    database: String,
    namespace: String,
    _dir: TempDir,
}

impl Shared {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        Self {
            sink: SmtpSink::start(0).await,
            database: shared_database(&dir).await,
            namespace: test_namespace(),
            _dir: dir,
        }
    }

    async fn start(&self) -> TestApp {
        spawn_app_with(&[
            ("SMTP_URL", self.sink.url.as_str()),
            ("DATABASE_URL", self.database.as_str()),
            ("NATS_NAMESPACE", self.namespace.as_str()),
        ])
        .await
    }

    /// How many received messages carry `message_id`.
    fn copies_of(&self, message_id: &str) -> usize {
        self.sink
            .received()
            .iter()
            .filter(|mail| header(&mail.data, "message-id") == Some(message_id))
            .count()
    }
}

/// The value of header `name` (lower case) in a raw message.
fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    data.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
}

async fn email_status(db: &Db, id: Uuid) -> String {
    with_pool!(db, |pool| sqlx::query_scalar(
        "select email_status from notifications where id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await)
    .unwrap()
}

/// Makes every update that records an e-mail as sent fail while
/// `refuse_sent` has a row, as a database dropping connections would.
async fn refuse_recording_sent(db: &Db) {
    let trigger = match db {
        Db::Sqlite(_) => {
            "create trigger refuse_sent before update on notifications \
             when new.email_status = 'sent' and exists (select 1 from refuse_sent) \
             begin select raise(abort, 'refused by the test'); end"
        }
        Db::Postgres(_) => {
            "create function refuse_sent() returns trigger language plpgsql as $$ begin \
               if new.email_status = 'sent' and exists (select 1 from refuse_sent) then \
                 raise exception 'refused by the test'; \
               end if; \
               return new; \
             end $$; \
             create trigger refuse_sent before update on notifications \
             for each row execute function refuse_sent()"
        }
    };
    execute(db, "create table refuse_sent (id integer)").await;
    execute(db, trigger).await;
    execute(db, "insert into refuse_sent (id) values (1)").await;
}

async fn record_failures(app: &TestApp) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("email_outcome_record_failures_total "))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

async fn apply_for_loan(app: &TestApp, owner: &Session) {
    let body = json!({"principal": "1000.00", "annual_interest_rate": "6", "term_months": 12});
    let created = app
        .post_json("/api/v1/loans", Some(&owner.access_token), &body)
        .await;
    assert_eq!(created.status(), 201);
}

/// Waits for the one notification of `kind` and returns its id.
async fn notification_of(app: &TestApp, kind: &str) -> Uuid {
    eventually("the notification", DEADLINE, || async {
        with_pool!(&app.db, |pool| sqlx::query_scalar(
            "select id from notifications where kind = $1"
        )
        .bind(kind)
        .fetch_optional(pool)
        .await)
        .unwrap()
    })
    .await
}

async fn until_sent(db: &Db, id: Uuid) {
    eventually("the e-mail recorded as sent", DEADLINE, || async {
        (email_status(db, id).await == "sent").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_mail_whose_outcome_could_not_be_recorded_is_recorded_later_and_never_sent_again() {
    let shared = Shared::new().await;
    let first = shared.start().await;
    refuse_recording_sent(&first.db).await;
    let owner = first.register("owner").await;
    apply_for_loan(&first, &owner).await;
    let id = notification_of(&first, "loan.applied").await;
    eventually("a refused record of the sent mail", DEADLINE, || async {
        (record_failures(&first).await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(shared.copies_of(&message_id(id)), 1);
    assert_eq!(email_status(&first.db, id).await, "pending");

    execute(&first.db, "delete from refuse_sent").await;
    until_sent(&first.db, id).await;
    assert_eq!(shared.sink.received().len(), 1, "the mail was sent again");
    assert_eq!(
        header(&shared.sink.received()[0].data, "message-id"),
        Some(format!("<{id}@loan-tracker.invalid>").as_str())
    );

    // Another instance starting on the same database leaves the sent mail alone.
    first.stop().await.unwrap();
    let second = shared.start().await;
    apply_for_loan(&second, &owner).await;
    eventually("the second application's mail", DEADLINE, || async {
        (shared.sink.received().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(shared.copies_of(&message_id(id)), 1, "sent again at start");
}

/// A notification stored without sending its e-mail, as if its instance
/// died before the send.
async fn store_pending(db: &Db, owner: &Session, title: &str) -> Uuid {
    let new = NewNotification {
        user_id: owner.user_id,
        event_id: Uuid::now_v7(),
        kind: "payment.received".into(),
        title: title.into(),
        body: "We received 10.00 USD.".into(),
    };
    let stored = store::insert_once(db, &new, Utc::now()).await.unwrap();
    stored.expect("a new notification").id
}

async fn set_claim(db: &Db, id: Uuid, until: chrono::DateTime<Utc>) {
    with_pool!(db, |pool| sqlx::query(
        "update notifications set email_claimed_until = $1 where id = $2"
    )
    .bind(until)
    .bind(id)
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
}

#[tokio::test]
async fn a_start_sends_pending_mails_nobody_holds_once_and_leaves_claimed_and_sent_ones() {
    let shared = Shared::new().await;
    let first = shared.start().await;
    let owner = first.register("owner").await;
    let held = store_pending(&first.db, &owner, "Held elsewhere").await;
    let free = store_pending(&first.db, &owner, "Nobody holds this").await;
    set_claim(&first.db, held, Utc::now() + chrono::Duration::hours(1)).await;
    first.stop().await.unwrap();

    let second = shared.start().await;
    until_sent(&second.db, free).await;
    assert_eq!(shared.copies_of(&message_id(free)), 1);
    assert_eq!(
        shared.copies_of(&message_id(held)),
        0,
        "a held mail was sent"
    );
    assert_eq!(email_status(&second.db, held).await, "pending");

    // The other instance died: its claim lapses.
    set_claim(&second.db, held, Utc::now() - chrono::Duration::minutes(1)).await;
    second.stop().await.unwrap();
    let third = shared.start().await;
    until_sent(&third.db, held).await;
    assert_eq!(shared.copies_of(&message_id(held)), 1);
    assert_eq!(
        shared.copies_of(&message_id(free)),
        1,
        "a sent mail was sent again"
    );
    assert_eq!(shared.sink.received().len(), 2);
}
