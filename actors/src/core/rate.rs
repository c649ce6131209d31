//! Interest and fee rates: exact percent decimals such as `"12.5"`.

use std::fmt;

use rust_decimal::Decimal;

use super::money::split_plain_decimal;

/// Highest rate we accept, in percent per year. Far above any lawful loan, low enough
/// that a 480-month flat loan of the largest principal still fits in `i64` minor units.
pub const MAX_RATE_PERCENT: u32 = 1_000;

/// Most decimals a rate may carry; more precision than this is a typo, not a product.
pub const MAX_RATE_DECIMALS: u32 = 6;

/// Longest rate text we parse.
const MAX_RATE_TEXT_CHARS: usize = 16;

/// A non-negative percentage, exact (`12.5` means 12.5 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate(Decimal);

/// Why a rate was refused; every variant is the caller's input error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The rate text is not a plain decimal such as `12.5`.
    #[error("rate is not a plain decimal number")]
    NotANumber,
    /// The rate is negative.
    #[error("rate must not be negative")]
    Negative,
    /// The rate has more decimals than [`MAX_RATE_DECIMALS`].
    #[error("rate has more than {MAX_RATE_DECIMALS} decimals")]
    TooManyDecimals,
    /// The rate is above the cap that applies where it is used.
    #[error("rate is above {max_percent} %")]
    AboveCap {
        /// The cap in percent.
        max_percent: u32,
    },
}

impl Rate {
    /// Zero percent.
    pub const ZERO: Rate = Rate(Decimal::ZERO);

    /// Parses a percent string such as `"12.5"`; same grammar as amounts (no sign,
    /// exponent or whitespace), at most [`MAX_RATE_DECIMALS`] decimals, at most [`MAX_RATE_PERCENT`].
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        if text.starts_with('-') {
            return Err(RateError::Negative);
        }
        if text.len() > MAX_RATE_TEXT_CHARS {
            return Err(RateError::NotANumber);
        }
        let (whole, fraction) = split_plain_decimal(text).ok_or(RateError::NotANumber)?;
        if fraction.len() > MAX_RATE_DECIMALS as usize {
            return Err(RateError::TooManyDecimals);
        }
        let digits: String = whole.chars().chain(fraction.chars()).collect();
        // At most 16 ASCII digits: always fits in i128.
        let mantissa: i128 = digits.parse().map_err(|_| RateError::NotANumber)?;
        let scale = u32::try_from(fraction.len()).map_err(|_| RateError::TooManyDecimals)?;
        Rate::from_percent(Decimal::from_i128_with_scale(mantissa, scale))
    }

    /// A rate from an exact percent value, checked against the same bounds as [`Rate::parse`].
    pub fn from_percent(percent: Decimal) -> Result<Rate, RateError> {
        if percent.is_sign_negative() && !percent.is_zero() {
            return Err(RateError::Negative);
        }
        if percent.normalize().scale() > MAX_RATE_DECIMALS {
            return Err(RateError::TooManyDecimals);
        }
        if percent > Decimal::from(MAX_RATE_PERCENT) {
            return Err(RateError::AboveCap {
                max_percent: MAX_RATE_PERCENT,
            });
        }
        Ok(Rate(percent.normalize()))
    }

    /// The rate in percent (`12.5` for 12.5 %).
    pub fn percent(self) -> Decimal {
        self.0
    }

    /// True for 0 %.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The monthly fraction of an annual percent rate: `annual / 12 / 100`.
    pub(crate) fn monthly_fraction(self) -> Decimal {
        self.0 / Decimal::from(1_200)
    }
}

impl fmt::Display for Rate {
    /// The shortest exact percent text: `12.5`, `3`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_exact_percent_decimals() {
        assert_eq!(Rate::parse("12.5").unwrap().to_string(), "12.5");
        assert_eq!(Rate::parse("3").unwrap().percent(), Decimal::from(3));
        assert_eq!(Rate::parse("7.250").unwrap().to_string(), "7.25");
        assert!(Rate::parse("0").unwrap().is_zero());
    }

    #[test]
    fn malformed_or_out_of_range_rates_are_rejected() {
        assert_eq!(Rate::parse("-1"), Err(RateError::Negative));
        for text in ["", "+1", "1e2", " 1", "1.", ".1", "abc", "1.2.3"] {
            assert_eq!(Rate::parse(text), Err(RateError::NotANumber), "{text}");
        }
        assert_eq!(Rate::parse("1.1234567"), Err(RateError::TooManyDecimals));
        assert_eq!(
            Rate::parse("1000.000001"),
            Err(RateError::AboveCap {
                max_percent: MAX_RATE_PERCENT
            })
        );
        assert!(Rate::parse("1000").is_ok());
    }
}
