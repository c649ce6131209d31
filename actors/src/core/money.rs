//! Exact money: a non-negative integer count of minor units of one ISO 4217 currency.
//!
//! No float ever touches money. Amounts arrive as decimal strings in major
//! units and leave the same way, with the currency's full decimals.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

/// Longest amount text we parse; anything longer cannot fit in `i64` minor units anyway.
const MAX_AMOUNT_TEXT_CHARS: usize = 32;

/// ISO 4217 codes we accept with their minor-unit exponents. An unknown code is
/// rejected rather than guessed, because a wrong exponent would scale every amount.
#[rustfmt::skip]
const CURRENCY_TABLE: &[(&str, u8)] = &[
    ("AED", 2), ("ARS", 2), ("AUD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3), ("BIF", 0),
    ("BRL", 2), ("CAD", 2), ("CHF", 2), ("CLP", 0), ("CNY", 2), ("COP", 2), ("CZK", 2),
    ("DJF", 0), ("DKK", 2), ("EGP", 2), ("EUR", 2), ("GBP", 2), ("GHS", 2), ("GNF", 0),
    ("HKD", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("ISK", 0),
    ("JOD", 3), ("JPY", 0), ("KES", 2), ("KMF", 0), ("KRW", 0), ("KWD", 3), ("LYD", 3),
    ("MAD", 2), ("MXN", 2), ("MYR", 2), ("NGN", 2), ("NOK", 2), ("NZD", 2), ("OMR", 3),
    ("PEN", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2),
    ("RSD", 2), ("RWF", 0), ("SAR", 2), ("SEK", 2), ("SGD", 2), ("THB", 2), ("TND", 3),
    ("TRY", 2), ("TWD", 2), ("UAH", 2), ("UGX", 0), ("USD", 2), ("UYU", 2), ("VND", 0),
    ("VUV", 0), ("XAF", 0), ("XOF", 0), ("XPF", 0), ("ZAR", 2),
];

/// A currency: its ISO 4217 code and how many decimals its minor unit has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    /// US dollar, the default currency of a loan (2 decimals).
    pub const USD: Currency = Currency {
        code: "USD",
        exponent: 2,
    };
    /// Euro (2 decimals).
    pub const EUR: Currency = Currency {
        code: "EUR",
        exponent: 2,
    };
    /// Japanese yen (no decimals).
    pub const JPY: Currency = Currency {
        code: "JPY",
        exponent: 0,
    };
    /// Kuwaiti dinar (3 decimals).
    pub const KWD: Currency = Currency {
        code: "KWD",
        exponent: 3,
    };

    /// Looks up an upper-case ISO 4217 code such as `"USD"`.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        CURRENCY_TABLE
            .iter()
            .find(|(known, _)| *known == code)
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.chars().take(8).collect()))
    }

    /// The ISO 4217 code, e.g. `"USD"`.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Number of decimals of the minor unit (JPY 0, USD 2, KWD 3).
    pub fn exponent(self) -> u32 {
        u32::from(self.exponent)
    }

    /// Minor units per major unit; the table keeps exponents ≤ 3 so this cannot overflow.
    fn minor_per_major(self) -> i64 {
        10_i64.pow(self.exponent())
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency::USD
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// Why an amount or currency was refused; every variant is the caller's input error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The amount text was empty.
    #[error("amount is empty")]
    Empty,
    /// The amount text is not a plain decimal such as `125.50`.
    #[error("amount is not a plain decimal number")]
    NotANumber,
    /// The amount is negative.
    #[error("amount must not be negative")]
    Negative,
    /// The amount is zero where a positive amount is required.
    #[error("amount must be greater than zero")]
    Zero,
    /// The amount has more decimals than the currency's minor unit.
    #[error("amount has more than {allowed} decimals for its currency")]
    TooManyDecimals {
        /// The currency's exponent.
        allowed: u32,
    },
    /// The amount does not fit the integer range of minor units.
    #[error("amount is too large")]
    Overflow,
    /// The currency code is not in our ISO 4217 table.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// Two amounts of different currencies were combined.
    #[error("currency mismatch: expected {expected}, found {found}")]
    CurrencyMismatch {
        /// The currency required here.
        expected: Currency,
        /// The currency given.
        found: Currency,
    },
}

/// An exact, non-negative amount of money in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// An amount from a count of minor units; negative counts are refused.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { minor, currency })
    }

    /// Parses a major-unit decimal string (`"125.50"`); zero is accepted.
    ///
    /// Refused: signs (a leading `+` too), exponents, whitespace, separators,
    /// a bare `.`, more decimals than the currency has, values beyond `i64` minor units.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        if text.len() > MAX_AMOUNT_TEXT_CHARS {
            return Err(MoneyError::Overflow);
        }
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, fraction) = split_plain_decimal(text).ok_or(MoneyError::NotANumber)?;
        if fraction.len() > currency.exponent() as usize {
            return Err(MoneyError::TooManyDecimals {
                allowed: currency.exponent(),
            });
        }
        let mut minor: i64 = 0;
        // Pad the fraction with zeros to the currency's exponent: "1.5" USD is 150 cents.
        let padding = currency.exponent() as usize - fraction.len();
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .chain(std::iter::repeat_n(b'0', padding));
        for digit in digits {
            minor = minor
                .checked_mul(10)
                .and_then(|value| value.checked_add(i64::from(digit - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        Ok(Money { minor, currency })
    }

    /// Like [`Money::parse`] but zero is refused: payment and principal amounts.
    pub fn parse_positive(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let money = Money::parse(text, currency)?;
        if money.is_zero() {
            return Err(MoneyError::Zero);
        }
        Ok(money)
    }

    /// The amount as a count of minor units (cents for USD).
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency of the amount.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// True for a zero amount.
    pub fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// Sum of two amounts of the same currency; overflow is an error, never a wrap.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    /// Difference of two amounts; a negative result is an error because money here never is.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::from_minor(self.minor - other.minor, self.currency)
    }

    /// `self × percent / 100` rounded half-even to minor units (late fees, flat interest).
    pub(crate) fn percent_of(self, percent: Decimal) -> Result<Money, MoneyError> {
        let exact = Decimal::from(self.minor)
            .checked_mul(percent)
            .and_then(|value| value.checked_div(Decimal::ONE_HUNDRED))
            .ok_or(MoneyError::Overflow)?;
        Money::from_minor(
            round_minor(exact).ok_or(MoneyError::Overflow)?,
            self.currency,
        )
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    /// Major units with the currency's full decimals: `100.00`, `100000` (JPY), `100.000` (KWD).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = self.currency.exponent() as usize;
        if exponent == 0 {
            return write!(f, "{}", self.minor);
        }
        let per_major = self.currency.minor_per_major();
        write!(
            f,
            "{}.{:0exponent$}",
            self.minor / per_major,
            self.minor % per_major
        )
    }
}

/// Rounds an exact count of minor units half-even (banker's rounding) to an integer.
pub(crate) fn round_minor(exact: Decimal) -> Option<i64> {
    let rounded = exact.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
    i64::try_from(rounded).ok()
}

/// Splits `"123.45"` into `("123", "45")`; only ASCII digits and one inner dot are allowed,
/// so signs, exponents, whitespace and separators all fail here.
pub(crate) fn split_plain_decimal(text: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return None,
        None => (text, ""),
    };
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    Some((whole, fraction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_minor_units_of_their_currency() {
        assert_eq!(
            Money::parse("125.5", Currency::USD).unwrap().minor(),
            12_550
        );
        assert_eq!(
            Money::parse("100000", Currency::JPY).unwrap().minor(),
            100_000
        );
        assert_eq!(Money::parse("1.234", Currency::KWD).unwrap().minor(), 1_234);
        assert_eq!(Money::parse("0", Currency::USD).unwrap().minor(), 0);
    }

    #[test]
    fn malformed_amounts_are_rejected_with_their_reason() {
        let usd = Currency::USD;
        assert_eq!(Money::parse("", usd), Err(MoneyError::Empty));
        assert_eq!(Money::parse("-1", usd), Err(MoneyError::Negative));
        for text in [
            "+1", "1e3", " 1", "1 ", "1,000", ".5", "5.", "abc", "1.2.3", "NaN", "0x10",
        ] {
            assert_eq!(
                Money::parse(text, usd),
                Err(MoneyError::NotANumber),
                "{text}"
            );
        }
        assert_eq!(
            Money::parse("1.005", usd),
            Err(MoneyError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(
            Money::parse("1.0", Currency::JPY),
            Err(MoneyError::TooManyDecimals { allowed: 0 })
        );
        assert_eq!(
            Money::parse("92233720368547758.08", usd),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Money::parse_positive("0.00", usd), Err(MoneyError::Zero));
    }

    #[test]
    fn amounts_display_with_the_currency_full_decimals() {
        assert_eq!(
            Money::parse("100", Currency::USD).unwrap().to_string(),
            "100.00"
        );
        assert_eq!(
            Money::parse("100000", Currency::JPY).unwrap().to_string(),
            "100000"
        );
        assert_eq!(
            Money::parse("100", Currency::KWD).unwrap().to_string(),
            "100.000"
        );
        assert_eq!(
            Money::parse("0.05", Currency::USD).unwrap().to_string(),
            "0.05"
        );
    }

    #[test]
    fn arithmetic_is_checked_and_never_negative() {
        let one = Money::parse("1", Currency::USD).unwrap();
        let max = Money::from_minor(i64::MAX, Currency::USD).unwrap();
        assert_eq!(max.checked_add(one), Err(MoneyError::Overflow));
        assert_eq!(
            Money::zero(Currency::USD).checked_sub(one),
            Err(MoneyError::Negative)
        );
        let euro = Money::parse("1", Currency::EUR).unwrap();
        assert!(matches!(
            one.checked_add(euro),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn currencies_come_from_the_table_and_unknown_codes_are_rejected() {
        assert_eq!(Currency::parse("BHD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("GBP").unwrap().exponent(), 2);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn percent_rounds_half_even_to_minor_units() {
        let amount = Money::from_minor(50, Currency::USD).unwrap();
        // 3 % of 0.50 is 1.5 cents: half-even rounds to 2; 1 % of 0.50 is 0.5 cents: rounds to 0.
        assert_eq!(amount.percent_of(Decimal::from(3)).unwrap().minor(), 2);
        assert_eq!(amount.percent_of(Decimal::from(1)).unwrap().minor(), 0);
    }
}
