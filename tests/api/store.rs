//! The store conformance suite: every case runs on SQLite, and on PostgreSQL
//! when `TEST_DATABASE_URL` is set, each on a fresh database.

use chrono::Utc;
use loan_tracker::accounts::users::{self, NewUser};
use loan_tracker::accounts::{Email, Role, Username};
use loan_tracker::store::{Db, StoreError};

use crate::helpers::{conformance, fresh_postgres, fresh_sqlite, outbox_count};

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
                        .fetch_one(pool)
                        .await
                        .unwrap();
                assert_eq!(value, "on", "{setting} is {value}");
            }
        }
    }
}
