//! Settings: defaults, required and malformed values.

use std::collections::HashMap;

use super::*;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn no_settings_at_all_is_the_embedded_default() {
    let settings = settings(&[]).expect("defaults are valid");
    assert_eq!(settings.http_addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        settings.database,
        DatabaseSettings::Sqlite {
            path: PathBuf::from("./data/loan-tracker.db")
        }
    );
    assert!(
        settings.nats_url.is_none() && settings.smtp_url.is_none() && settings.jwt_secret.is_none()
    );
    assert_eq!(settings.log_format, LogFormat::Text);
}

#[test]
fn postgres_without_jwt_secret_names_the_setting() {
    let error = settings(&[("DATABASE_URL", "postgres://u:p@db/x")]).unwrap_err();
    assert!(error.to_string().contains("JWT_SECRET"), "{error}");
}

#[test]
fn malformed_settings_name_the_variable() {
    for (name, value) in [
        ("HTTP_ADDR", "nowhere"),
        ("DATABASE_URL", "mysql://x/y"),
        ("NATS_URL", "http://x"),
        ("NATS_NAMESPACE", "a.b"),
        ("SMTP_URL", "smtp://"),
        ("LOG_FORMAT", "yaml"),
        ("DB_MAX_CONNECTIONS", "0"),
        ("RATE_LIMIT_PER_MIN", "0"),
        ("LOAN_ACTOR_IDLE_SECS", "-1"),
        ("ACTOR_CALL_TIMEOUT_MS", "0"),
        ("ACCESS_TOKEN_TTL_SECS", "soon"),
        ("JWT_SECRET", "short"),
        ("MAIL_FROM", "not an address"),
    ] {
        let error = settings(&[(name, value)]).unwrap_err();
        assert!(error.to_string().contains(name), "{name}: {error}");
    }
}

#[test]
fn redacted_database_never_shows_the_password() {
    let db = DatabaseSettings::Postgres {
        url: "postgres://user:hunter2@db.example:6543/x".into(),
    };
    let shown = db.redacted();
    assert!(
        shown.contains("db.example:6543") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn debug_of_the_settings_shows_no_secret() {
    let jwt = "a-signing-key-of-thirty-two-bytes-or-more";
    let settings = settings(&[
        (
            "DATABASE_URL",
            "postgres://app:db-pass-123@db.example:5432/loans",
        ),
        ("SMTP_URL", "smtp://mailer:smtp-pass-456@mail.example:587"),
        ("JWT_SECRET", jwt),
    ])
    .expect("valid settings");
    let shown = format!("{settings:?}");
    for secret in ["db-pass-123", "smtp-pass-456", jwt] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
    let DatabaseSettings::Postgres { url } = &settings.database else {
        panic!("a postgres URL gives postgres settings");
    };
    assert_eq!(
        url.expose(),
        "postgres://app:db-pass-123@db.example:5432/loans"
    );
    assert_eq!(settings.jwt_secret.as_ref().map(Secret::expose), Some(jwt));
}
