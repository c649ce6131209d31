//! `spawn_app()` and friends: a real server on port 0 over a fresh database.

use std::collections::HashMap;
use std::net::SocketAddr;

use loan_tracker::app::Application;
use loan_tracker::settings::Settings;
use loan_tracker::store::{self, Db};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A JWT secret long enough for the settings check; tests only.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// A client without connection reuse surprises.
    pub client: reqwest::Client,
    /// The app's database, for assertions that look behind the API.
    pub db: Db,
    /// The app's bus.
    pub bus: std::sync::Arc<dyn actors::bus::Bus>,
    /// The app's data directory (mail files land under `mail/`).
    pub data_dir: std::path::PathBuf,
    /// The app's loan actors.
    pub tree: actors::tree::LoanTree,
    /// The app's clock (manual: tests move it).
    pub clock: loan_tracker::clock::Clock,
    /// The app's job runner (runs jobs without HTTP).
    pub jobs: loan_tracker::jobs::JobRunner,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: TempDir,
}

impl TestApp {
    /// Absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for the server to stop; returns its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Settings for a test: a temp data dir, port 0, a fresh database on the
/// backend the environment selects, plus `extra` variables.
pub async fn test_settings(data_dir: &TempDir, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("HTTP_ADDR".into(), "127.0.0.1:0".into()),
        ("DATA_DIR".into(), data_dir.path().display().to_string()),
        ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
        ("DB_CONNECT_TIMEOUT_SECS".into(), "10".into()),
        // Tests drive many requests from one address; the limiter tests set their own.
        ("RATE_LIMIT_PER_MIN".into(), "1000000".into()),
        ("LOGIN_RATE_LIMIT_PER_MIN".into(), "1000000".into()),
        // No cron fires in tests: they run jobs through the API or `TestApp::jobs`.
        ("REMINDER_CRON".into(), String::new()),
        ("OVERDUE_CRON".into(), String::new()),
    ]);
    if let Some(url) = fresh_postgres_url().await {
        vars.insert("DATABASE_URL".into(), url);
    }
    if let Ok(url) = std::env::var("TEST_NATS_URL") {
        vars.insert("NATS_URL".into(), url);
        // Tests share one NATS server: each app gets its own streams and subjects.
        vars.insert("NATS_NAMESPACE".into(), test_namespace());
    }
    for (name, value) in extra {
        vars.insert((*name).into(), (*value).into());
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).expect("test settings are valid")
}

/// Held by the tests that load the machine hardest (service processes under
/// load, three instances at once), so they never run at the same time and
/// the rest of the suite keeps its share of the two cores.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A NATS namespace no other test uses.
pub fn test_namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// Starts the real server on port 0 against a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`] with extra settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_at(chrono::Utc::now(), extra).await
}

/// Like [`spawn_app_with`] with the app's clock stopped at `start`.
pub async fn spawn_app_at(start: chrono::DateTime<chrono::Utc>, extra: &[(&str, &str)]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        loan_tracker::telemetry::init(loan_tracker::settings::LogFormat::Text);
    }
    let data_dir = TempDir::new().expect("temp dir");
    let settings = test_settings(&data_dir, extra).await;
    let clock = loan_tracker::clock::Clock::manual(start);
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("app builds");
    let addr = app.addr();
    let db = app.db().clone();
    let tree = app.tree().clone();
    let jobs = app.jobs().clone();
    let bus = app.bus().as_bus();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    // Serving means the consumers are subscribed (they start before the
    // listener), so a test may publish as soon as this returns.
    let health = format!("http://{addr}/health");
    eventually(
        "the app to serve",
        std::time::Duration::from_secs(30),
        || async {
            reqwest::get(&health)
                .await
                .ok()
                .filter(|response| response.status().is_success())
                .map(drop)
        },
    )
    .await;
    TestApp {
        addr,
        client: reqwest::Client::new(),
        db,
        tree,
        clock,
        jobs,
        bus,
        data_dir: data_dir.path().to_path_buf(),
        stop: Some(stop),
        server: Some(server),
        _data_dir: data_dir,
    }
}

/// A fresh, empty PostgreSQL database when `TEST_DATABASE_URL` is set.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin_url = std::env::var("TEST_DATABASE_URL").ok()?;
    let name = format!("lt_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("TEST_DATABASE_URL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL parses");
    url.set_path(&name);
    Some(url.to_string())
}

/// A fresh migrated database of each backend available: SQLite always,
/// PostgreSQL when `TEST_DATABASE_URL` is set. The temp dir keeps SQLite alive.
pub async fn fresh_sqlite() -> (Db, TempDir) {
    let data_dir = TempDir::new().expect("temp dir");
    let path = data_dir.path().join("store.db");
    let settings = Settings::from_lookup(|name| match name {
        "DATABASE_URL" => Some(format!("sqlite://{}", path.display())),
        _ => None,
    })
    .expect("sqlite settings");
    (
        store::connect(&settings).await.expect("sqlite opens"),
        data_dir,
    )
}

/// A fresh migrated PostgreSQL database, when `TEST_DATABASE_URL` is set.
pub async fn fresh_postgres() -> Option<Db> {
    let url = fresh_postgres_url().await?;
    let settings = Settings::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some(TEST_JWT_SECRET.into()),
        _ => None,
    })
    .expect("postgres settings");
    Some(store::connect(&settings).await.expect("postgres opens"))
}

/// A logged-in user as a test sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's id.
    pub user_id: uuid::Uuid,
    /// The e-mail it registered with.
    pub email: String,
    /// Bearer token.
    pub access_token: String,
    /// Refresh token of this login.
    pub refresh_token: String,
}

/// Password every test user gets.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// POSTs JSON to `path` with an optional bearer token.
    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// GETs `path` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Registers `name@example.com` and returns its session.
    pub async fn register(&self, name: &str) -> Session {
        let email = format!("{name}@example.com");
        let body =
            serde_json::json!({ "email": email, "username": name, "password": TEST_PASSWORD });
        let response = self.post_json("/api/v1/auth/register", None, &body).await;
        assert_eq!(
            response.status(),
            201,
            "register {name}: {}",
            response.text().await.unwrap()
        );
        session(response.json().await.unwrap(), email)
    }

    /// Logs in with the test password.
    pub async fn login(&self, email: &str) -> Session {
        let body = serde_json::json!({ "email": email, "password": TEST_PASSWORD });
        let response = self.post_json("/api/v1/auth/login", None, &body).await;
        assert_eq!(response.status(), 200, "login {email}");
        session(response.json().await.unwrap(), email.to_owned())
    }

    /// Registers a user, gives it `role` behind the API, and logs in again.
    pub async fn user_with_role(&self, name: &str, role: loan_tracker::accounts::Role) -> Session {
        let registered = self.register(name).await;
        loan_tracker::accounts::users::set_role(
            &self.db,
            registered.user_id,
            role,
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("role set");
        self.login(&registered.email).await
    }
}

fn session(body: serde_json::Value, email: String) -> Session {
    Session {
        user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
        email,
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// Instantiates each listed `async fn case(db: Db)` of the calling module for
/// both backends: SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set,
/// each case on a fresh database.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (db, _dir) = crate::helpers::fresh_sqlite().await;
                    super::$case(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    match crate::helpers::fresh_postgres().await {
                        Some(db) => super::$case(db).await,
                        None => eprintln!("TEST_DATABASE_URL not set: PostgreSQL case skipped"),
                    }
                }
            )*
        }
    };
}
pub(crate) use conformance;

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Outbox rows of one event type (e.g. `user.registered`).
pub async fn outbox_count(db: &Db, event_type: &str) -> i64 {
    let subject = format!("loans.events.{event_type}");
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(
        "select count(*) from outbox where subject = $1"
    )
    .bind(&subject)
    .fetch_one(pool)
    .await)
    .unwrap()
}

/// `count` APPROVED loans of `owner` (12 months at 6 %), approved by a new ADMIN, through the API.
pub async fn approved_loans(
    app: &TestApp,
    owner: &Session,
    count: usize,
    principal: &str,
) -> Vec<uuid::Uuid> {
    let admin = app
        .user_with_role(
            &format!("admin{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            loan_tracker::accounts::Role::Admin,
        )
        .await;
    let mut loans = Vec::with_capacity(count);
    for _ in 0..count {
        let body = serde_json::json!({"principal": principal, "annual_interest_rate": "6", "term_months": 12});
        let loan: serde_json::Value = app
            .post_json("/api/v1/loans", Some(&owner.access_token), &body)
            .await
            .json()
            .await
            .unwrap();
        let loan_id: uuid::Uuid = loan["id"].as_str().unwrap().parse().unwrap();
        let approve = app
            .post_json(
                &format!("/api/v1/loans/{loan_id}/approve"),
                Some(&admin.access_token),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(approve.status(), 200, "approving a test loan");
        loans.push(loan_id);
    }
    loans
}

/// The claims of an access token this app issued (signature checked with the test key).
pub fn token_claims(token: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["loan-tracker-api"]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("a token of this app")
    .claims
}

/// A loan's `total_paid` as its owner reads it over HTTP.
pub async fn total_paid(app: &TestApp, owner: &Session, loan_id: uuid::Uuid) -> String {
    let response = app
        .get(
            &format!("/api/v1/loans/{loan_id}"),
            Some(&owner.access_token),
        )
        .await;
    let status = response.status();
    let loan: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "GET loan {loan_id}: {loan}"
    );
    loan["total_paid"].as_str().unwrap().to_owned()
}

/// Like [`total_paid`] for polling: `None` while the loan cannot be read
/// (an instance still starting, a 503 under load), so `eventually` retries.
pub async fn total_paid_if_readable(
    app: &TestApp,
    owner: &Session,
    loan_id: uuid::Uuid,
) -> Option<String> {
    let response = app
        .get(
            &format!("/api/v1/loans/{loan_id}"),
            Some(&owner.access_token),
        )
        .await;
    if response.status() != reqwest::StatusCode::OK {
        return None;
    }
    let loan: serde_json::Value = response.json().await.ok()?;
    loan["total_paid"].as_str().map(str::to_owned)
}

/// Runs test-only SQL (triggers, fault injection) on the database.
pub async fn execute(db: &Db, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    with_pool!(db, |pool| sqlx::raw_sql(sql).execute(pool).await.map(drop)).unwrap();
}
