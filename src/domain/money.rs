//! Money and quantities as exact decimals. Floats never touch an amount.

pub use rust_decimal::Decimal;

/// An amount in one currency. Negative is money leaving the account holder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// The exact amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

impl Money {
    /// An amount in `currency`.
    pub fn new(amount: Decimal, currency: &str) -> Self {
        Self { amount, currency: currency.to_owned() }
    }

    /// The amount as the contract's decimal string: no exponent, no trailing zeros beyond the
    /// currency's usual two places ("12.30", "-0.5000" becomes "-0.50").
    pub fn amount_text(&self) -> String {
        format_decimal(self.amount, 2)
    }
}

/// Formats `value` in plain notation with at least `min_scale` fractional digits and no trailing
/// zeros beyond them.
pub fn format_decimal(value: Decimal, min_scale: u32) -> String {
    let mut value = value.normalize();
    if value.scale() < min_scale {
        value.rescale(min_scale);
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_keep_two_places_and_drop_extra_trailing_zeros() {
        let cases = [("12.3", "12.30"), ("-0.5000", "-0.50"), ("7", "7.00"), ("1.23456", "1.23456")];
        for (input, expected) in cases {
            let money = Money::new(Decimal::from_str(input).unwrap(), "EUR");
            assert_eq!(money.amount_text(), expected, "formatting {input}");
        }
    }
}
