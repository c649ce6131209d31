//! The binary itself: exit codes and messages of start-up failures and subcommands.

use std::process::{Command, Output};

use tempfile::TempDir;

use crate::helpers::TEST_JWT_SECRET;

/// Runs the binary in an empty directory (so no `.env` applies) with only `vars` set.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Output, TempDir) {
    let dir = TempDir::new().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_loan-tracker"));
    command.args(args).current_dir(dir.path()).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.envs(vars.iter().copied());
    (command.output().expect("binary runs"), dir)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unreachable_database_exits_1_with_one_line_naming_the_host_not_the_password() {
    let (output, _dir) = run(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://nope:sekrit@127.0.0.1:1/x"),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("DB_CONNECT_TIMEOUT_SECS", "1"),
            ("RUST_LOG", "off"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(
        !message.contains("sekrit") && !message.contains("panicked"),
        "{message}"
    );
}

#[test]
fn postgres_without_jwt_secret_exits_1_naming_it() {
    let (output, _dir) = run(
        &["serve"],
        &[("DATABASE_URL", "postgres://u@127.0.0.1:1/x")],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("JWT_SECRET"), "{message}");
}

#[test]
fn a_malformed_setting_exits_1_naming_it() {
    let (output, _dir) = run(&["migrate"], &[("HTTP_ADDR", "not-an-address")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("HTTP_ADDR"), "{}", stderr(&output));
}

#[test]
fn a_bad_cron_setting_exits_1_naming_it() {
    for name in ["OVERDUE_CRON", "REMINDER_CRON"] {
        let (output, _dir) = run(&["serve"], &[(name, "30 0 * * *")]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let message = stderr(&output);
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["healthcheck", "--help"],
        &["admin", "create", "--help"],
    ] {
        let (output, _dir) = run(args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn migrate_creates_the_embedded_database_under_data_dir() {
    let (output, dir) = run(&["migrate"], &[("RUST_LOG", "off")]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join("data/loan-tracker.db").exists());
}

#[test]
fn admin_create_refuses_a_weak_password_and_creates_then_recognises_an_admin() {
    let data_dir = TempDir::new().unwrap();
    let data = data_dir.path().display().to_string();
    let vars = [("DATA_DIR", data.as_str()), ("RUST_LOG", "off")];
    let (weak, _dir) = run(
        &[
            "admin",
            "create",
            "--email",
            "boss@example.com",
            "--password",
            "short",
        ],
        &vars,
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(stderr(&weak).contains("--password"), "{}", stderr(&weak));

    let args = [
        "admin",
        "create",
        "--email",
        "boss@example.com",
        "--password",
        "a long enough password",
    ];
    let (created, _dir) = run(&args, &vars);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(String::from_utf8_lossy(&created.stdout).contains("created ADMIN boss@example.com"));
    let (again, _dir) = run(&args, &vars);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already is an ADMIN"));
}

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_server_and_fails_without_one() {
    let app = crate::helpers::spawn_app().await;
    let addr = app.addr.to_string();
    let (up, _dir) =
        tokio::task::spawn_blocking(move || run(&["healthcheck"], &[("HTTP_ADDR", &addr)]))
            .await
            .unwrap();
    assert!(up.status.success(), "{}", stderr(&up));
    let addr = app.addr.to_string();
    app.stop().await.unwrap();
    let (down, _dir) =
        tokio::task::spawn_blocking(move || run(&["healthcheck"], &[("HTTP_ADDR", &addr)]))
            .await
            .unwrap();
    assert_eq!(down.status.code(), Some(1));
}
