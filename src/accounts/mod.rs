//! Accounts: who can log in, with which role. Passwords, users and their store.

pub mod admin;
pub mod hash_pool;
pub mod password;
pub mod profiles;
pub mod standing;
pub mod users;

use thiserror::Error;

pub use crate::auth::role::{Role, UnknownRole};

/// A rejected account value; the message says what is wrong.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AccountError {
    /// The e-mail address is not usable.
    #[error("email {0}")]
    Email(&'static str),
    /// The username is not usable.
    #[error("username {0}")]
    Username(&'static str),
    /// The password does not meet the policy.
    #[error("password {0}")]
    Password(String),
    /// A profile field is not usable (the message names it).
    #[error("{0}")]
    Profile(String),
}

/// Longest accepted e-mail address (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

/// An e-mail address a mailbox can have, trimmed and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address with the `email_address` crate (RFC 5321/5322
    /// `addr-spec`): a dot-atom local part and a domain name of at least two
    /// labels. Stricter than the RFCs on purpose: no display name, no quoted
    /// local part (`"<b>"@x.y`) and no IP literal — no provider hands those
    /// out, and they would carry markup into every page that shows the address.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() || email.len() > MAX_EMAIL_LEN {
            return Err(AccountError::Email("must be 1 to 254 characters"));
        }
        if !email.contains('@') {
            return Err(AccountError::Email("must contain @"));
        }
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        let parsed = email_address::EmailAddress::parse_with_options(&email, options)
            .map_err(|_| AccountError::Email("is not a valid address"))?;
        // The crate allows any atom in the domain; a host name has letters,
        // digits and hyphens only, and its last label is not a number.
        let domain = parsed.domain();
        let host_name = domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        let top_level = domain.rsplit('.').next().unwrap_or_default();
        if parsed.local_part().starts_with('"')
            || !host_name
            || top_level.chars().all(|c| c.is_ascii_digit())
        {
            return Err(AccountError::Email("is not a valid address"));
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Username length bounds, in characters.
const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=64;

/// A display handle: 3–64 ASCII letters, digits, `.`, `_`, `-`, `@` (what
/// the published schema's pattern says, exactly: no trimming, no look-alike
/// letters from other scripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let name = raw;
        if !USERNAME_CHARS.contains(&name.chars().count()) {
            return Err(AccountError::Username("must be 3 to 64 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(AccountError::Username(
                "may contain only ASCII letters, digits, '.', '_', '-' and '@'",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The username as given (uniqueness ignores case).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for good in [
            "o'brien+loans@example.co.uk",
            "jörg@bücher.example",
            "a.b-c@x.io",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@.com",
            "<script>@x.y",
            "\"<script>\"@x.y",
            "ann@[127.0.0.1]",
            "ann@127.0.0.1",
            "Ann <ann@example.com>",
            "ann..lee@example.com",
            "ann@exa_mple.com",
            "ann@exa{mple}.com",
            "ann@-example.com",
            "ann\u{0}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
