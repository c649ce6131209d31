//! The JWT signing key: from `JWT_SECRET`, or generated once and kept under `DATA_DIR`.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use thiserror::Error;

use crate::settings::Settings;

/// File under `DATA_DIR` holding the generated key.
const SECRET_FILE: &str = "jwt-secret";
/// Bytes of randomness in a generated key (hex-encoded on disk).
const GENERATED_SECRET_BYTES: usize = 32;

/// The generated key could not be read or written.
#[derive(Debug, Error)]
#[error("JWT secret file {path}: {source}")]
pub struct SigningKeyError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Returns the configured key, or the one kept under `DATA_DIR` (creating it on first run).
pub fn jwt_secret(settings: &Settings) -> Result<Vec<u8>, SigningKeyError> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = settings.data_dir.join(SECRET_FILE);
    let wrap = |source| SigningKeyError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= GENERATED_SECRET_BYTES => {
            Ok(existing.trim().as_bytes().to_vec())
        }
        Ok(_) | Err(_) if !path.exists() => create(&path).map_err(wrap),
        Ok(_) => Err(wrap(std::io::Error::other(
            "file exists but holds too short a key",
        ))),
        Err(error) => Err(wrap(error)),
    }
}

fn create(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(hex.as_bytes())?;
    file.sync_all()?;
    Ok(hex.into_bytes())
}
