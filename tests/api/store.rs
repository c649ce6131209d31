//! The store conformance suite: every case runs on SQLite, and on PostgreSQL
//! when `TEST_DATABASE_URL` is set, each on a fresh database.

use std::time::Duration;

use actors::core::LoanId;
use chrono::Utc;
use loan_tracker::accounts::users::{self, NewUser};
use loan_tracker::accounts::{Email, Role, Username};
use loan_tracker::store::{Db, StoreError, loans};

use crate::helpers::{conformance, execute, fresh_postgres, fresh_sqlite, outbox_count};

conformance!(
    a_created_user_is_found_by_email_and_id,
    a_taken_email_is_a_duplicate_whatever_its_case,
    concurrent_writers_all_succeed,
    a_user_change_and_its_event_commit_together,
    the_last_active_admin_cannot_be_demoted_or_deactivated,
);

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        username: Username::parse(email).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::User,
    }
}

async fn a_created_user_is_found_by_email_and_id(db: Db) {
    let created = users::create(&db, new_user("ann@example.com"), Utc::now())
        .await
        .unwrap();
    let by_email = users::find_by_email(&db, &Email::parse("ANN@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.user.id, created.id);
    let by_id = users::find_by_id(&db, created.id).await.unwrap().unwrap();
    assert_eq!(by_id.email, "ann@example.com");
    assert_eq!(by_id.role, Role::User);
}

async fn a_taken_email_is_a_duplicate_whatever_its_case(db: Db) {
    users::create(&db, new_user("bob@example.com"), Utc::now())
        .await
        .unwrap();
    let mut again = new_user("BOB@example.com");
    again.username = Username::parse("other-bob").unwrap();
    let error = users::create(&db, again, Utc::now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Duplicate { .. }), "{error:?}");
    assert_eq!(
        outbox_count(&db, "user.registered").await,
        1,
        "the failed insert left an event behind"
    );
}

async fn concurrent_writers_all_succeed(db: Db) {
    let writers = (0..40).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            users::create(&db, new_user(&format!("user{n}@example.com")), Utc::now()).await
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer
            .unwrap()
            .expect("no writer sees 'database is locked'");
    }
    assert_eq!(outbox_count(&db, "user.registered").await, 40);
}

async fn a_user_change_and_its_event_commit_together(db: Db) {
    let user = users::create(&db, new_user("cy@example.com"), Utc::now())
        .await
        .unwrap();
    let change = users::set_role(&db, user.id, Role::Manager, None, Utc::now())
        .await
        .unwrap();
    let users::UserChange::Changed(changed) = change else {
        panic!("role change refused: {change:?}");
    };
    assert_eq!(changed.role, Role::Manager);
    assert_eq!(
        users::find_by_id(&db, user.id).await.unwrap().unwrap().role,
        Role::Manager
    );
    assert_eq!(outbox_count(&db, "user.role_changed").await, 1);
    let unknown = users::set_role(&db, uuid::Uuid::new_v4(), Role::Admin, None, Utc::now())
        .await
        .unwrap();
    assert_eq!(unknown, users::UserChange::NotFound);
}

async fn the_last_active_admin_cannot_be_demoted_or_deactivated(db: Db) {
    let now = Utc::now();
    let first = users::create(&db, new_user("root@example.com"), now)
        .await
        .unwrap();
    users::set_role(&db, first.id, Role::Admin, None, now)
        .await
        .unwrap();
    assert_eq!(
        users::set_role(&db, first.id, Role::User, None, now)
            .await
            .unwrap(),
        users::UserChange::LastAdmin
    );
    assert_eq!(
        users::deactivate(&db, first.id, first.id, now)
            .await
            .unwrap(),
        users::UserChange::LastAdmin
    );
    let second = users::create(&db, new_user("root2@example.com"), now)
        .await
        .unwrap();
    users::set_role(&db, second.id, Role::Admin, None, now)
        .await
        .unwrap();
    assert!(matches!(
        users::set_role(&db, first.id, Role::User, None, now)
            .await
            .unwrap(),
        users::UserChange::Changed(_)
    ));
    assert_eq!(
        users::deactivate(&db, second.id, second.id, now)
            .await
            .unwrap(),
        users::UserChange::LastAdmin
    );
}

#[tokio::test]
async fn fresh_databases_are_isolated() {
    let (first, _a) = fresh_sqlite().await;
    let (second, _b) = fresh_sqlite().await;
    users::create(&first, new_user("solo@example.com"), Utc::now())
        .await
        .unwrap();
    assert!(
        users::find_by_email(&second, &Email::parse("solo@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    if let Some(pg) = fresh_postgres().await {
        assert!(
            users::find_by_email(&pg, &Email::parse("solo@example.com").unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// SPEC §4 (money): a payment answered 201 survives a power loss. SQLite runs
/// WAL with `synchronous=FULL` on every pooled connection (NORMAL may lose the
/// last commits); PostgreSQL keeps `synchronous_commit` and `fsync` on.
#[tokio::test]
async fn the_apps_database_makes_every_acknowledged_commit_durable() {
    let app = crate::helpers::spawn_app().await;
    match &app.db {
        Db::Sqlite(sqlite) => {
            for pool in [&sqlite.writer, &sqlite.reader] {
                let mut conn = pool.acquire().await.unwrap();
                let synchronous: i64 = sqlx::query_scalar("pragma synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(synchronous, 2, "PRAGMA synchronous is not FULL (2)");
                let journal: String = sqlx::query_scalar("pragma journal_mode")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(journal, "wal");
            }
        }
        Db::Postgres(pool) => {
            for setting in ["synchronous_commit", "fsync"] {
                let value: String =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("show {setting}")))
                        .fetch_one(pool.pool())
                        .await
                        .unwrap();
                assert_eq!(value, "on", "{setting} is {value}");
            }
        }
    }
}

/// A caller dropped while its transaction begins (a client hanging up, a
/// timeout) leaves no transaction open on the pooled connection. sqlx 0.9
/// left one on PostgreSQL (transact-rs/sqlx#4393): every later statement on
/// that connection ran inside it, unseen by anyone else, until an error
/// aborted it and the connection failed everything it was lent for.
#[tokio::test]
async fn a_transaction_cancelled_while_it_begins_leaves_no_transaction_open() {
    let sqlite_dir = tempfile::TempDir::new().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        sqlite_dir.path().join("store.db").display()
    )];
    urls.extend(crate::helpers::fresh_postgres_url().await);
    for url in urls {
        // One connection, so whatever a cancelled begin leaves behind is
        // what the next statement gets.
        let settings = loan_tracker::settings::Settings::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "DB_MAX_CONNECTIONS" => Some("1".into()),
            "JWT_SECRET" => Some(crate::helpers::TEST_JWT_SECRET.into()),
            _ => None,
        })
        .unwrap();
        let db = loan_tracker::store::connect(&settings).await.unwrap();
        execute(&db, "create table cancel_probe (n integer)").await;
        let rounds = 120_u64;
        for round in 0..rounds {
            // From "dropped before the first poll returns" to "dropped
            // after BEGIN's answer", through the round trip in between.
            let patience = Duration::from_micros(round % 40 * 25);
            let _ = tokio::time::timeout(patience, db.begin()).await;
            let _ = tokio::time::timeout(
                patience,
                loans::get_loan(&db, LoanId::new(uuid::Uuid::new_v4())),
            )
            .await;
            execute(&db, &format!("insert into cancel_probe values ({round})")).await;
        }
        // Another connection sees every insert only if each one committed.
        let observer = loan_tracker::store::connect(&settings).await.unwrap();
        let seen: i64 = with_pool!(&observer, |pool| {
            sqlx::query_scalar("select count(*) from cancel_probe")
                .fetch_one(pool)
                .await
        })
        .unwrap();
        assert_eq!(
            seen, rounds as i64,
            "inserts lost in a leaked transaction on {url}"
        );
    }
}

/// A whole application dropped with its runtime (as every test drops its
/// app) closes its PostgreSQL connections: nothing it started — services,
/// loops, actors — keeps its state, and so its pools, alive.
#[test]
fn a_dropped_application_leaves_no_database_connection_behind() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL not set: PostgreSQL case skipped");
        return;
    };
    let first = tokio::runtime::Runtime::new().expect("a runtime");
    let database: String = first.block_on(async {
        let app = crate::helpers::spawn_app().await;
        let response = app.get("/ready", None).await;
        assert!(response.status().is_success(), "the app is up");
        with_read_pool!(&app.db, |pool| sqlx::query_scalar(
            "select current_database()"
        )
        .fetch_one(pool)
        .await)
        .expect("the app's database")
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().expect("a runtime");
    second.block_on(async {
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("admin pool");
        crate::helpers::eventually(
            "the dropped app's connections to close",
            Duration::from_secs(10),
            || async {
                let open: i64 =
                    sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
                        .bind(&database)
                        .fetch_one(&admin)
                        .await
                        .expect("pg_stat_activity");
                (open == 0).then_some(())
            },
        )
        .await;
    });
}
