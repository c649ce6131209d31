//! Calendar dates as they come in from outside (request bodies, query
//! parameters, bus messages): strictly `YYYY-MM-DD`, years 1900–2200
//! (SPEC §4 Dates). Anything else is refused before it reaches the core,
//! where a year like 0 or 10000 would make a loan that can never be approved.

use std::fmt;
use std::ops::RangeInclusive;

use chrono::{Datelike, NaiveDate};
use salvo::oapi::schema::{KnownFormat, Object, Schema, SchemaFormat};
use salvo::oapi::{BasicType, Components, ComposeSchema, RefOr, ToSchema};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// Years a date from outside may have.
pub const YEARS: RangeInclusive<i32> = 1900..=2200;

/// The regular expression published in the OpenAPI document: exactly
/// `YYYY-MM-DD` with a year in [`YEARS`] (the day is checked against the
/// month by the parser).
pub const PATTERN: &str =
    "^(19[0-9]{2}|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// Why a date was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DateError {
    /// Not ten characters `YYYY-MM-DD` of digits and dashes.
    #[error("must be a date written YYYY-MM-DD (got {0:?})")]
    Format(String),
    /// The right shape, but no such day (e.g. `2026-02-30`).
    #[error("{0:?} is not a day of the calendar")]
    NoSuchDay(String),
    /// A real day outside the years the service handles.
    #[error("year must be from 1900 to 2200 (got {0})")]
    Year(i32),
}

/// A date from outside, valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireDate(NaiveDate);

impl WireDate {
    /// Parses `raw` strictly: `YYYY-MM-DD`, a real day, a year in [`YEARS`].
    pub fn parse(raw: &str) -> Result<Self, DateError> {
        let bytes = raw.as_bytes();
        let shaped = bytes.len() == 10
            && bytes.iter().enumerate().all(|(index, byte)| match index {
                4 | 7 => *byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        if !shaped {
            return Err(DateError::Format(shorten(raw)));
        }
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| DateError::NoSuchDay(raw.to_owned()))?;
        if !YEARS.contains(&date.year()) {
            return Err(DateError::Year(date.year()));
        }
        Ok(Self(date))
    }

    /// Parses `raw` for the field (or query parameter) `field`; the message names it.
    pub fn parse_field(field: &str, raw: &str) -> Result<Self, String> {
        Self::parse(raw).map_err(|error| format!("{field}: {error}"))
    }

    /// The date.
    pub fn get(self) -> NaiveDate {
        self.0
    }
}

/// At most 40 characters of a refused value, so a huge one does not fill the answer.
fn shorten(raw: &str) -> String {
    raw.chars().take(40).collect()
}

impl From<WireDate> for NaiveDate {
    fn from(date: WireDate) -> Self {
        date.0
    }
}

impl fmt::Display for WireDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.format("%Y-%m-%d").fmt(f)
    }
}

impl<'de> Deserialize<'de> for WireDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WireDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date written YYYY-MM-DD")
            }
            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<WireDate, E> {
                WireDate::parse(raw).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The schema every date field and parameter shares.
fn schema() -> RefOr<Schema> {
    Object::new()
        .schema_type(BasicType::String)
        .format(SchemaFormat::KnownFormat(KnownFormat::Date))
        .pattern(PATTERN)
        .example("2026-01-15")
        .into()
}

impl ToSchema for WireDate {
    fn to_schema(_components: &mut Components) -> RefOr<Schema> {
        schema()
    }
}

impl ComposeSchema for WireDate {
    fn compose(_components: &mut Components, _generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yyyy_mm_dd_days_from_1900_to_2200_are_accepted() {
        for good in ["1900-01-01", "2026-11-25", "2024-02-29", "2200-12-31"] {
            assert_eq!(WireDate::parse(good).unwrap().to_string(), good);
        }
        for bad in [
            "0000-01-01",
            "+10000-01-01",
            "2026-1-1",
            "1899-12-31",
            "2201-01-01",
            "2026-02-30",
            "2026-13-01",
            "2026-01-01T00:00:00Z",
            " 2026-01-01",
            "２０２６-01-01",
            "",
        ] {
            assert!(WireDate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_json_field_is_parsed_strictly() {
        assert!(serde_json::from_str::<WireDate>("\"2026-01-15\"").is_ok());
        let error = serde_json::from_str::<WireDate>("\"0000-01-01\"").unwrap_err();
        assert!(
            error.to_string().contains("year must be from 1900"),
            "{error}"
        );
        assert!(serde_json::from_str::<WireDate>("20260115").is_err());
    }
}
