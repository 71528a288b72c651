//! JSON helpers shared by the adapters' wire types: providers send money and quantities as JSON
//! numbers, which linkgate reads exactly from their text, never through `f64`.

use crate::domain::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// An optional JSON number (or numeric string) read exactly from its text: `11450.45` stays
/// `11450.45`, digits beyond what `f64` holds included; more than 28 significant digits is an
/// error rather than a rounding.
pub fn exact_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let raw: Option<Box<RawValue>> = Option::deserialize(deserializer)?;
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => decimal_from_json(raw.get()).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A required JSON number or numeric string, read as [`exact_decimal`] reads it.
pub fn required_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    exact_decimal(deserializer)?.ok_or_else(|| serde::de::Error::custom("an amount is missing"))
}

/// The exact value of a JSON number's text (quotes around it are tolerated).
pub fn decimal_from_json(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let valid =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !valid {
        return Err("an amount is not a number".to_owned());
    }
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).map_err(|_| "an amount is out of range".to_owned())
    } else {
        Decimal::from_str_exact(text).map_err(|_| "an amount has more digits than 28".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_exactly_from_the_json_text() {
        let cases = [
            ("11450.45", "11450.45"),
            ("0.1", "0.1"),
            ("12500.00", "12500.00"),
            ("0", "0"),
            ("-3.5", "-3.5"),
            ("1.5e2", "150"),
            ("\"42.10\"", "42.10"),
        ];
        for (json, expected) in cases {
            assert_eq!(decimal_from_json(json).unwrap().to_string(), expected, "{json}");
        }
        for bad in ["true", "\"abc\"", "{}", "1.000000000000000000000000000001"] {
            assert!(decimal_from_json(bad).is_err(), "{bad}");
        }
    }
}
