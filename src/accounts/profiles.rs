//! Personal details of a user, validated on the way in.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use super::AccountError;
use crate::store::{Db, StoreError};
use crate::store::{with_pool, with_read_pool};

/// Name length bounds, in characters.
const NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=100;
/// Longest address, in characters.
const MAX_ADDRESS_CHARS: usize = 300;
/// Age at which a person may hold a loan.
const ADULT_AGE_YEARS: i32 = 18;

/// A profile as stored and shown.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct Profile {
    /// The user it belongs to.
    pub user_id: Uuid,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Phone number in E.164 form.
    pub phone_number: Option<String>,
    /// Date of birth (an adult's).
    pub date_of_birth: Option<NaiveDate>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Fields as a client sends them, before validation.
#[derive(Debug, Clone)]
pub struct ProfileInput {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Phone number.
    pub phone_number: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
}

impl ProfileInput {
    /// Checks every field as of `today`; the error names the field.
    pub fn validate(
        self,
        user_id: Uuid,
        today: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Profile, AccountError> {
        let first_name = name("first_name", &self.first_name)?;
        let last_name = name("last_name", &self.last_name)?;
        let address = self
            .address
            .map(|address| address.trim().to_owned())
            .filter(|a| !a.is_empty());
        if address
            .as_ref()
            .is_some_and(|a| a.chars().count() > MAX_ADDRESS_CHARS)
        {
            return Err(AccountError::Profile(format!(
                "address must be at most {MAX_ADDRESS_CHARS} characters"
            )));
        }
        let phone_number = self
            .phone_number
            .map(|phone| phone.trim().to_owned())
            .filter(|p| !p.is_empty());
        if let Some(phone) = &phone_number
            && !is_e164(phone)
        {
            return Err(AccountError::Profile(
                "phone_number must be E.164, e.g. +4915112345678".into(),
            ));
        }
        if let Some(born) = self.date_of_birth {
            check_birth_date(born, today)?;
        }
        Ok(Profile {
            user_id,
            first_name,
            last_name,
            address,
            phone_number,
            date_of_birth: self.date_of_birth,
            updated_at: now,
        })
    }
}

fn name(field: &str, raw: &str) -> Result<String, AccountError> {
    let trimmed = raw.trim();
    if !NAME_CHARS.contains(&trimmed.chars().count()) || trimmed.chars().any(char::is_control) {
        return Err(AccountError::Profile(format!(
            "{field} must be 1 to 100 printable characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// `+` then 2 to 15 digits, the first not zero.
fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn check_birth_date(born: NaiveDate, today: NaiveDate) -> Result<(), AccountError> {
    if born >= today {
        return Err(AccountError::Profile(
            "date_of_birth must be in the past".into(),
        ));
    }
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    if age < ADULT_AGE_YEARS {
        return Err(AccountError::Profile(format!(
            "the user must be at least {ADULT_AGE_YEARS} years old"
        )));
    }
    Ok(())
}

/// The profile of `user_id`, if one was saved.
pub async fn get(db: &Db, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_as(
            "select user_id, first_name, last_name, address, phone_number, date_of_birth, \
             updated_at from profiles where user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await
    })?)
}

/// Creates or replaces the profile.
pub async fn put(db: &Db, profile: &Profile) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "insert into profiles (user_id, first_name, last_name, address, phone_number, \
             date_of_birth, updated_at) values ($1, $2, $3, $4, $5, $6, $7) \
             on conflict (user_id) do update \
             set first_name = excluded.first_name, last_name = excluded.last_name, \
             address = excluded.address, phone_number = excluded.phone_number, \
             date_of_birth = excluded.date_of_birth, updated_at = excluded.updated_at",
        )
        .bind(profile.user_id)
        .bind(&profile.first_name)
        .bind(&profile.last_name)
        .bind(&profile.address)
        .bind(&profile.phone_number)
        .bind(profile.date_of_birth)
        .bind(profile.updated_at)
        .execute(pool)
        .await
        .map(drop)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProfileInput {
        ProfileInput {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            address: None,
            phone_number: Some("+4915112345678".into()),
            date_of_birth: NaiveDate::from_ymd_opt(1990, 5, 17),
        }
    }

    #[test]
    fn a_minor_or_a_future_birth_date_is_refused() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let now = Utc::now();
        assert!(input().validate(Uuid::nil(), today, now).is_ok());
        let seventeen = ProfileInput {
            date_of_birth: NaiveDate::from_ymd_opt(2008, 11, 26),
            ..input()
        };
        assert!(seventeen.validate(Uuid::nil(), today, now).is_err());
        let eighteen_today = ProfileInput {
            date_of_birth: NaiveDate::from_ymd_opt(2008, 11, 25),
            ..input()
        };
        assert!(eighteen_today.validate(Uuid::nil(), today, now).is_ok());
        let future = ProfileInput {
            date_of_birth: NaiveDate::from_ymd_opt(2030, 1, 1),
            ..input()
        };
        assert!(future.validate(Uuid::nil(), today, now).is_err());
    }

    #[test]
    fn phone_numbers_must_be_e164_and_names_non_empty() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        for bad in [
            "015112345678",
            "+0151",
            "+1",
            "+49 151 123",
            "+1234567890123456",
        ] {
            let profile = ProfileInput {
                phone_number: Some(bad.into()),
                ..input()
            };
            assert!(
                profile.validate(Uuid::nil(), today, Utc::now()).is_err(),
                "{bad}"
            );
        }
        let blank = ProfileInput {
            first_name: "  ".into(),
            ..input()
        };
        assert!(blank.validate(Uuid::nil(), today, Utc::now()).is_err());
    }
}
