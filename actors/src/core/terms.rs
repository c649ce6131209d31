//! Loan terms: what the borrower applied for, each field valid once constructed.

use std::fmt;
use std::str::FromStr;

use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;

use super::error::LoanError;
use super::money::{Currency, Money};
use super::rate::{Rate, RateError};

/// Longest term we offer: 40 years of monthly installments.
pub const MAX_TERM_MONTHS: u16 = 480;
/// Most installments of a weekly or biweekly schedule (ten years of weeks).
pub const MAX_INSTALLMENTS: u16 = 520;
/// Longest grace period before a late fee: a year.
pub const MAX_GRACE_DAYS: u16 = 365;
/// Highest late fee rate, in percent of the late installment.
pub const MAX_LATE_FEE_PERCENT: u32 = 100;
/// Late fee rate when the application gives none, in percent.
pub const DEFAULT_LATE_FEE_PERCENT: u32 = 3;
/// Largest principal in minor units (10^15): keeps every interest product far from `i64::MAX`.
pub const MAX_PRINCIPAL_MINOR: i64 = 1_000_000_000_000_000;
/// Longest first period: a first due date more than a year after disbursement is a typo.
pub const MAX_FIRST_PERIOD_DAYS: i64 = 366;

/// Number of monthly installments, 1 to [`MAX_TERM_MONTHS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TermMonths(u16);

impl TermMonths {
    /// A term of `months` months, refused outside 1..=480.
    pub fn new(months: u32) -> Result<TermMonths, LoanError> {
        match u16::try_from(months) {
            Ok(months) if (1..=MAX_TERM_MONTHS).contains(&months) => Ok(TermMonths(months)),
            _ => Err(LoanError::OutOfRange {
                field: "term_months",
                min: 1,
                max: MAX_TERM_MONTHS.into(),
            }),
        }
    }

    /// The number of months.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Days after a due date before a late fee applies, 0 to [`MAX_GRACE_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GraceDays(u16);

impl GraceDays {
    /// A grace period of `days` days, refused above 365.
    pub fn new(days: u32) -> Result<GraceDays, LoanError> {
        match u16::try_from(days) {
            Ok(days) if days <= MAX_GRACE_DAYS => Ok(GraceDays(days)),
            _ => Err(LoanError::OutOfRange {
                field: "grace_days",
                min: 0,
                max: MAX_GRACE_DAYS.into(),
            }),
        }
    }

    /// The number of days.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// How often installments fall due (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Frequency {
    /// Every calendar month from the anchor (disbursement or first due date).
    #[default]
    Monthly,
    /// Every 14 days.
    Biweekly,
    /// Every 7 days.
    Weekly,
}

impl Frequency {
    /// The API spelling: `monthly`, `biweekly`, `weekly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Monthly => "monthly",
            Frequency::Biweekly => "biweekly",
            Frequency::Weekly => "weekly",
        }
    }

    /// The days of one period, for the weekly kinds; `None` for monthly.
    pub fn period_days(self) -> Option<u32> {
        match self {
            Frequency::Monthly => None,
            Frequency::Biweekly => Some(14),
            Frequency::Weekly => Some(7),
        }
    }
}

impl FromStr for Frequency {
    type Err = LoanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Frequency::Monthly, Frequency::Biweekly, Frequency::Weekly]
            .into_iter()
            .find(|frequency| frequency.as_str() == text)
            .ok_or_else(|| LoanError::UnknownFrequency(text.chars().take(32).collect()))
    }
}

/// How a period's interest counts days (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DayCount {
    /// A month is 30 days, a year 360: a monthly period is exactly rate/12.
    #[default]
    Thirty360,
    /// The actual days of the period over 365.
    Actual365,
    /// The actual days of the period over 360.
    Actual360,
}

impl DayCount {
    /// The API spelling: `30/360`, `actual/365`, `actual/360`.
    pub fn as_str(self) -> &'static str {
        match self {
            DayCount::Thirty360 => "30/360",
            DayCount::Actual365 => "actual/365",
            DayCount::Actual360 => "actual/360",
        }
    }

    /// The days of the year this count divides by.
    pub fn year_days(self) -> u32 {
        match self {
            DayCount::Actual365 => 365,
            DayCount::Thirty360 | DayCount::Actual360 => 360,
        }
    }
}

impl FromStr for DayCount {
    type Err = LoanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            DayCount::Thirty360,
            DayCount::Actual365,
            DayCount::Actual360,
        ]
        .into_iter()
        .find(|count| count.as_str() == text)
        .ok_or_else(|| LoanError::UnknownDayCount(text.chars().take(32).collect()))
    }
}

/// How installments split principal and interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RepaymentMethod {
    /// Equal installments `A = P·r/(1−(1+r)^−n)`; interest on the outstanding principal.
    #[default]
    Annuity,
    /// Equal principal parts `P/n`; interest on the outstanding principal, so installments shrink.
    EqualPrincipal,
    /// Interest `P × rate × term/12` fixed up front and spread evenly.
    Flat,
}

impl RepaymentMethod {
    /// The API spelling: `annuity`, `equal_principal`, `flat`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepaymentMethod::Annuity => "annuity",
            RepaymentMethod::EqualPrincipal => "equal_principal",
            RepaymentMethod::Flat => "flat",
        }
    }
}

impl FromStr for RepaymentMethod {
    type Err = LoanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "annuity" => Ok(RepaymentMethod::Annuity),
            "equal_principal" => Ok(RepaymentMethod::EqualPrincipal),
            "flat" => Ok(RepaymentMethod::Flat),
            other => Err(LoanError::UnknownRepaymentMethod(
                other.chars().take(32).collect(),
            )),
        }
    }
}

impl fmt::Display for RepaymentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The terms of a loan. Built with [`LoanTerms::new`] and the `with_…` methods,
/// which start from the SPEC defaults (annuity, 3 % late fee, no grace, first due
/// one month after disbursement).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoanTerms {
    principal: Money,
    annual_rate: Rate,
    term: TermMonths,
    method: RepaymentMethod,
    late_fee_rate: Rate,
    grace_days: GraceDays,
    first_due_date: Option<NaiveDate>,
    purpose: Option<String>,
    frequency: Frequency,
    day_count: DayCount,
}

/// Longest accepted loan purpose, in characters.
pub const MAX_PURPOSE_CHARS: usize = 500;

impl LoanTerms {
    /// Terms with the defaults; the principal must be positive and at most [`MAX_PRINCIPAL_MINOR`].
    pub fn new(
        principal: Money,
        annual_rate: Rate,
        term: TermMonths,
    ) -> Result<LoanTerms, LoanError> {
        if !(1..=MAX_PRINCIPAL_MINOR).contains(&principal.minor()) {
            return Err(LoanError::OutOfRange {
                field: "principal_minor",
                min: 1,
                max: MAX_PRINCIPAL_MINOR,
            });
        }
        Ok(LoanTerms {
            principal,
            annual_rate,
            term,
            method: RepaymentMethod::default(),
            late_fee_rate: Rate::from_percent(Decimal::from(DEFAULT_LATE_FEE_PERCENT)).map_err(
                |source| LoanError::Rate {
                    field: "late_fee_rate",
                    source,
                },
            )?,
            grace_days: GraceDays::default(),
            first_due_date: None,
            purpose: None,
            frequency: Frequency::default(),
            day_count: DayCount::default(),
        })
    }

    /// The same terms with another frequency and day count. `installments`
    /// (the term) may reach [`MAX_INSTALLMENTS`] for weekly and biweekly
    /// schedules, [`MAX_TERM_MONTHS`] for monthly ones.
    pub fn with_schedule(
        self,
        frequency: Frequency,
        day_count: DayCount,
        installments: u32,
    ) -> Result<LoanTerms, LoanError> {
        let max = match frequency {
            Frequency::Monthly => MAX_TERM_MONTHS,
            Frequency::Biweekly | Frequency::Weekly => MAX_INSTALLMENTS,
        };
        let term = match u16::try_from(installments) {
            Ok(count) if (1..=max).contains(&count) => TermMonths(count),
            _ => {
                return Err(LoanError::OutOfRange {
                    field: "number_of_installments",
                    min: 1,
                    max: max.into(),
                });
            }
        };
        Ok(LoanTerms {
            term,
            frequency,
            day_count,
            ..self
        })
    }

    /// How often installments fall due.
    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// How a period's interest counts days.
    pub fn day_count(&self) -> DayCount {
        self.day_count
    }

    /// The same terms with another repayment method.
    pub fn with_method(self, method: RepaymentMethod) -> LoanTerms {
        LoanTerms { method, ..self }
    }

    /// The same terms with another late fee rate, refused above [`MAX_LATE_FEE_PERCENT`].
    pub fn with_late_fee_rate(self, late_fee_rate: Rate) -> Result<LoanTerms, LoanError> {
        if late_fee_rate.percent() > Decimal::from(MAX_LATE_FEE_PERCENT) {
            let source = RateError::AboveCap {
                max_percent: MAX_LATE_FEE_PERCENT,
            };
            return Err(LoanError::Rate {
                field: "late_fee_rate",
                source,
            });
        }
        Ok(LoanTerms {
            late_fee_rate,
            ..self
        })
    }

    /// The same terms with another grace period.
    pub fn with_grace_days(self, grace_days: GraceDays) -> LoanTerms {
        LoanTerms { grace_days, ..self }
    }

    /// The same terms with an explicit first due date (checked against disbursement at approval).
    pub fn with_first_due_date(self, first_due_date: Option<NaiveDate>) -> LoanTerms {
        LoanTerms {
            first_due_date,
            ..self
        }
    }

    /// The same terms with a free-text purpose (trimmed, 1 to [`MAX_PURPOSE_CHARS`]
    /// characters; `None` or blank means no purpose).
    pub fn with_purpose(self, purpose: Option<&str>) -> Result<LoanTerms, LoanError> {
        let purpose = purpose.map(str::trim).filter(|text| !text.is_empty());
        if purpose.is_some_and(|text| text.chars().count() > MAX_PURPOSE_CHARS) {
            return Err(LoanError::BadText {
                field: "purpose",
                max_chars: MAX_PURPOSE_CHARS,
            });
        }
        Ok(LoanTerms {
            purpose: purpose.map(str::to_owned),
            ..self
        })
    }

    /// What the borrower said the loan is for.
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    /// The principal lent.
    pub fn principal(&self) -> Money {
        self.principal
    }

    /// The loan's currency (the principal's).
    pub fn currency(&self) -> Currency {
        self.principal.currency()
    }

    /// Annual interest rate in percent.
    pub fn annual_rate(&self) -> Rate {
        self.annual_rate
    }

    /// Number of monthly installments.
    pub fn term(&self) -> TermMonths {
        self.term
    }

    /// How installments are computed.
    pub fn method(&self) -> RepaymentMethod {
        self.method
    }

    /// Late fee in percent of a late installment's unpaid principal and interest.
    pub fn late_fee_rate(&self) -> Rate {
        self.late_fee_rate
    }

    /// Days past due before a late fee applies.
    pub fn grace_days(&self) -> GraceDays {
        self.grace_days
    }

    /// The explicit first due date, if the application gave one.
    pub fn first_due_date(&self) -> Option<NaiveDate> {
        self.first_due_date
    }

    /// Due date of installment `seq` (1-based) for a loan disbursed on `disbursed_on`.
    ///
    /// Every date is computed from one anchor, never from the previous due date, so an
    /// end-of-month day survives short months: Jan 31 → Feb 28/29 → Mar 31 → Apr 30.
    /// Weekly and biweekly dates step by 7 or 14 days from the same anchor.
    pub fn due_date(&self, disbursed_on: NaiveDate, seq: u16) -> Result<NaiveDate, LoanError> {
        let (anchor, offset) = match self.first_due_date {
            Some(first) => (first, u32::from(seq) - 1),
            None => (disbursed_on, u32::from(seq)),
        };
        let due = match self.frequency.period_days() {
            None => anchor.checked_add_months(Months::new(offset)),
            Some(days) => anchor.checked_add_days(chrono::Days::new(u64::from(offset * days))),
        };
        due.ok_or(LoanError::DateOutOfRange {
            field: "due_date",
            date: anchor,
            reason: "beyond the calendar",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn terms() -> LoanTerms {
        let principal = Money::parse("1000", Currency::USD).unwrap();
        LoanTerms::new(
            principal,
            Rate::parse("12").unwrap(),
            TermMonths::new(6).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn end_of_month_due_dates_clamp_and_return_to_the_original_day() {
        let terms = terms();
        let due: Vec<_> = (1..=4)
            .map(|seq| terms.due_date(date(2024, 1, 31), seq).unwrap())
            .collect();
        assert_eq!(
            due,
            [
                date(2024, 2, 29),
                date(2024, 3, 31),
                date(2024, 4, 30),
                date(2024, 5, 31)
            ]
        );
        let due_2023 = terms.due_date(date(2023, 1, 31), 1).unwrap();
        assert_eq!(due_2023, date(2023, 2, 28));
    }

    #[test]
    fn an_explicit_first_due_date_anchors_the_following_ones() {
        let terms = terms().with_first_due_date(Some(date(2024, 3, 15)));
        assert_eq!(
            terms.due_date(date(2024, 1, 20), 1).unwrap(),
            date(2024, 3, 15)
        );
        assert_eq!(
            terms.due_date(date(2024, 1, 20), 3).unwrap(),
            date(2024, 5, 15)
        );
    }

    #[test]
    fn terms_outside_their_bounds_are_rejected() {
        assert!(TermMonths::new(0).is_err());
        assert!(TermMonths::new(481).is_err());
        assert!(TermMonths::new(480).is_ok());
        assert!(GraceDays::new(366).is_err());
        assert!(
            terms()
                .with_late_fee_rate(Rate::parse("100.5").unwrap())
                .is_err()
        );
        let zero = Money::zero(Currency::USD);
        assert!(LoanTerms::new(zero, Rate::ZERO, TermMonths::new(1).unwrap()).is_err());
    }

    #[test]
    fn repayment_methods_parse_from_their_api_names() {
        for method in [
            RepaymentMethod::Annuity,
            RepaymentMethod::EqualPrincipal,
            RepaymentMethod::Flat,
        ] {
            assert_eq!(method.as_str().parse::<RepaymentMethod>().unwrap(), method);
        }
        assert!("balloon".parse::<RepaymentMethod>().is_err());
    }
}
