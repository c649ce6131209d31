//! Access tokens: HS256 JWTs with pinned algorithm, issuer and audience.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::auth::role::Role;

/// `iss` of every token we issue and accept.
pub const ISSUER: &str = "loan-tracker";
/// `aud` of every token we issue and accept.
pub const AUDIENCE: &str = "loan-tracker-api";

/// Why a presented access token was refused (all answer 401).
#[derive(Debug, Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, expired, wrong issuer or audience, malformed.
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// Signing failed (a bug: HS256 signing cannot fail with a valid key).
    #[error("signing an access token failed: {0}")]
    Signing(String),
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The role when the token was issued; informational only: every request
    /// is judged by the user's current role ([`super::standing`]).
    pub role: Role,
    /// The session (refresh-token family, one per login) the token belongs
    /// to: ending the session ends its access tokens.
    pub sid: Uuid,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// Unique token id.
    pub jti: Uuid,
}

/// Signing and verification keys with the validation rules.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from the HS256 secret.
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        // Only HS256 is accepted: pinning the algorithm defeats `alg: none` and
        // algorithm-confusion tokens.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // `sid` is required too: `Claims` has no default for it.
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    /// Issues an access token for `user_id` with `role` in session
    /// `session_id`, valid from `now`.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            sub: user_id,
            role,
            sid: session_id,
            iat: now.timestamp(),
            exp: now.timestamp() + self.access_ttl.as_secs() as i64,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::new_v4(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| TokenError::Signing(error.to_string()))
    }

    /// Verifies signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| TokenError::Invalid(error.to_string()))
    }
}
