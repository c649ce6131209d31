//! Password policy and argon2id hashing, run on the process's bounded
//! hashing pool (one hash per core at a time), off the async worker threads.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use super::AccountError;
use super::hash_pool::HashPool;

/// The process's hashing threads: one per core, for every login, sign-up
/// and admin command of this process.
static POOL: LazyLock<HashPool> = LazyLock::new(|| {
    HashPool::start(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
});

/// Accepted password length, in characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 12..=128;
/// argon2id memory cost in KiB (19 MiB, OWASP's first recommended setting).
const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
const ITERATIONS: u32 = 2;
/// argon2id lanes.
const PARALLELISM: u32 = 1;

/// A password that meets the policy. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks the policy: 12 to 128 characters, none of them a control
    /// character (NUL, newline, escape…: nobody types those, and twelve NULs
    /// are not a secret).
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        if raw.chars().any(char::is_control) {
            return Err(AccountError::Password(
                "must not contain control characters (NUL, tab, newline, escape …)".to_owned(),
            ));
        }
        let chars = raw.chars().count();
        if !PASSWORD_CHARS.contains(&chars) {
            return Err(AccountError::Password(format!(
                "must be {} to {} characters (got {chars})",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            )));
        }
        Ok(Self(raw.to_owned()))
    }
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password, verified against when the e-mail is unknown
/// so that "no such user" costs as much time as "wrong password".
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hasher()
        .hash_password(uuid::Uuid::new_v4().as_bytes())
        .expect("hashing random bytes succeeds")
        .to_string()
});

/// Hashes a password into a PHC string, on the hashing pool.
pub async fn hash(password: Password) -> anyhow::Result<String> {
    POOL.run(move || {
        hasher()
            .hash_password(password.0.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing a password failed: {error}"))
    })
    .await?
}

/// Checks `candidate` against `stored_hash` (or against a dummy hash when
/// there is no user), on the hashing pool. Any malformed hash counts as a mismatch.
pub async fn verify(candidate: String, stored_hash: Option<String>) -> anyhow::Result<bool> {
    Ok(POOL
        .run(move || match stored_hash.as_deref() {
            Some(stored) => hasher()
                .verify_password(candidate.as_bytes(), stored)
                .is_ok(),
            None => {
                let _ = hasher().verify_password(candidate.as_bytes(), DUMMY_HASH.as_str());
                false
            }
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_outside_12_to_128_characters_are_refused() {
        assert!(Password::parse("short-pw").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse(&"\0".repeat(12)).is_err());
        assert!(Password::parse("correct horse\tbattery").is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert!(Password::parse("ünïcödé-pässwörd").is_ok());
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hashed = hash(Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(
            hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hashed}"
        );
        assert!(
            verify("correct horse battery".into(), Some(hashed.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(hashed))
                .await
                .unwrap()
        );
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }
}
