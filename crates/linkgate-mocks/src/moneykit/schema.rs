//! MoneyKit's published request models (API version `2023-02-18`), as its generated SDK
//! declares them (moneykit-python `moneykit/models/*.py`: field names, which are required, their
//! types and lengths), and the check of a JSON body against one. Every model is closed, as the
//! SDK's Ruby models are: a key the model does not list is refused, so a request carrying an
//! undocumented key fails here as it may at MoneyKit. The mock refuses what fails with 422
//! `api_error.request.validation_failed`; tests check every request a client sent with it.

use serde_json::Value;

/// One field of a model.
#[derive(Debug)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// Whether a body must carry it.
    pub required: bool,
    /// What its value must be.
    pub shape: Shape,
}

/// What a value must be.
#[derive(Debug)]
pub enum Shape {
    /// A string of `min` to `max` characters.
    Text {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// `true` or `false`.
    Bool,
    /// An ISO-8601 date and time, as a string.
    DateTime,
    /// One of these strings (an enum of the SDK).
    OneOf(&'static [&'static str]),
    /// An array of values of one shape.
    List(&'static Shape),
    /// An object with exactly these fields (a model).
    Model(&'static [Field]),
    /// `null` or the shape (`null` means "remove" where the SDK allows it).
    Nullable(&'static Shape),
}

/// Why a body does not fit its model, as MoneyKit's `validation_errors` entries say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: `body` then the keys and indices leading to the value.
    pub location: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// The kind of failure (`missing`, `extra_forbidden`, `string_type`, …).
    pub kind: &'static str,
}

const fn field(name: &'static str, required: bool, shape: Shape) -> Field {
    Field { name, required, shape }
}

const ANY_TEXT: Shape = Shape::Text { min: 0, max: usize::MAX };
const URL_TEXT: Shape = Shape::Text { min: 1, max: 65_536 };
const TEXT_LIST: Shape = Shape::List(&ANY_TEXT);

/// `Product`.
pub const PRODUCTS: &[&str] = &["accounts", "account_numbers", "identity", "transactions", "investments", "enrichment"];
/// `Country`.
const COUNTRIES: &[&str] = &["US", "GB", "CA"];
/// `Provider`: the data providers MoneyKit links through.
const PROVIDERS: &[&str] = &["moneykit", "finicity", "plaid", "yodlee", "mx", "akoya"];
/// `PhoneNumberType`.
const PHONE_TYPES: &[&str] = &["home", "work", "mobile", "other"];

/// `ProductSettings` (and `TransactionsProductSettings`, the same fields).
const PRODUCT_SETTINGS: Shape = Shape::Model(&[
    field("required", false, Shape::Bool),
    field("require_permission", false, Shape::Bool),
    field("prefetch", false, Shape::Bool),
    field("reason", false, ANY_TEXT),
]);

/// `ProductsSettings`: accounts are not among them (every link has its accounts).
const PRODUCTS_SETTINGS: Shape = Shape::Model(&[
    field("account_numbers", false, PRODUCT_SETTINGS),
    field("identity", false, PRODUCT_SETTINGS),
    field("transactions", false, PRODUCT_SETTINGS),
    field("investments", false, PRODUCT_SETTINGS),
]);

/// `LinkSessionSettingOverrides`.
const SETTINGS: Shape = Shape::Model(&[
    field("providers", false, Shape::List(&Shape::OneOf(PROVIDERS))),
    field("products", false, PRODUCTS_SETTINGS),
    field("countries", false, Shape::List(&Shape::OneOf(COUNTRIES))),
]);

/// `CustomerUser`, with `CustomerUserEmail` and `CustomerUserPhone`.
const CUSTOMER_USER: Shape = Shape::Model(&[
    field("id", true, Shape::Text { min: 4, max: 150 }),
    field(
        "email",
        false,
        Shape::Model(&[
            field("address", true, Shape::Text { min: 4, max: 254 }),
            field("customer_verified_at", false, Shape::DateTime),
        ]),
    ),
    field(
        "phone",
        false,
        Shape::Model(&[
            field("number", true, Shape::Text { min: 4, max: 30 }),
            field("country", false, Shape::OneOf(COUNTRIES)),
            field("customer_verified_at", false, Shape::DateTime),
        ]),
    ),
]);

/// `MoneyKitConnectFeatures`.
const CONNECT_FEATURES: Shape = Shape::Model(&[
    field("issue_reporter", false, Shape::Bool),
    field("enable_money_id", false, Shape::Bool),
    field("duplicate_institution_warning", false, Shape::Bool),
    field("duplicate_institution_rejected", false, Shape::Bool),
    field("connect_manually", false, Shape::Bool),
    field("permit_only_one_account", false, Shape::Bool),
    field("permit_only_depository_accounts", false, Shape::Bool),
]);

/// `Owner`, with `Address`, `PhoneNumber` and `Email`.
const OWNER: Shape = Shape::Model(&[
    field("names", true, TEXT_LIST),
    field(
        "addresses",
        true,
        Shape::List(&Shape::Model(&[
            field("city", false, ANY_TEXT),
            field("country", false, ANY_TEXT),
            field("postal_code", false, ANY_TEXT),
            field("region", false, ANY_TEXT),
            field("street", false, ANY_TEXT),
            field("primary", false, Shape::Bool),
        ])),
    ),
    field(
        "phone_numbers",
        true,
        Shape::List(&Shape::Model(&[
            field("number", true, ANY_TEXT),
            field("primary", false, Shape::Bool),
            field("type", true, Shape::OneOf(PHONE_TYPES)),
        ])),
    ),
    field(
        "emails",
        true,
        Shape::List(&Shape::Model(&[field("address", true, ANY_TEXT), field("primary", false, Shape::Bool)])),
    ),
]);

/// `CustomSandboxData`, with `CustomSandboxAccount`.
const CUSTOM_SANDBOX_DATA: Shape = Shape::Model(&[
    field(
        "accounts",
        true,
        Shape::List(&Shape::Model(&[
            field("account_type", true, ANY_TEXT),
            field("name", true, ANY_TEXT),
            field("account_number", true, ANY_TEXT),
            field("routing_number", false, ANY_TEXT),
        ])),
    ),
    field("owners", false, Shape::List(&OWNER)),
]);

/// M4 `POST /link-session`: `CreateLinkSessionRequest`.
pub const CREATE_LINK_SESSION: Shape = Shape::Model(&[
    field("settings", false, SETTINGS),
    field("customer_user", true, CUSTOMER_USER),
    field("existing_link_id", false, ANY_TEXT),
    field("institution_id", false, ANY_TEXT),
    field("redirect_uri", true, URL_TEXT),
    field("webhook", false, URL_TEXT),
    field("link_tags", false, TEXT_LIST),
    field("connect_features", false, CONNECT_FEATURES),
    field("custom_sandbox_data", false, CUSTOM_SANDBOX_DATA),
]);

/// M5 `POST /link-session/exchange-token`: `ExchangeTokenRequest`.
pub const EXCHANGE_TOKEN: Shape = Shape::Model(&[field("exchangeable_token", true, ANY_TEXT)]);

/// M8 `PATCH /links/{id}`: `UpdateLinkRequest` (`webhook: null` removes the link's webhook).
pub const UPDATE_LINK: Shape = Shape::Model(&[
    field("webhook", false, Shape::Nullable(&URL_TEXT)),
    field("link_tags", false, TEXT_LIST),
    field("tags", false, TEXT_LIST),
]);

/// M13 `POST /links/{id}/products`: `RefreshProductsRequest`.
pub const REFRESH_PRODUCTS: Shape = Shape::Model(&[field("products", true, Shape::List(&Shape::OneOf(PRODUCTS)))]);

/// Every way `body` does not fit `shape`; empty when it fits.
pub fn check(body: &Value, shape: &Shape) -> Vec<Violation> {
    let mut violations = Vec::new();
    check_at(body, shape, &mut vec!["body".to_owned()], &mut violations);
    violations
}

fn check_at(value: &Value, shape: &Shape, location: &mut Vec<String>, found: &mut Vec<Violation>) {
    let mut fail = |kind: &'static str, message: String| {
        found.push(Violation { location: location.clone(), message, kind });
    };
    match (shape, value) {
        (Shape::Nullable(_), Value::Null) => {}
        (Shape::Nullable(inner), value) => check_at(value, inner, location, found),
        (Shape::Text { min, max }, Value::String(text)) => {
            let length = text.chars().count();
            if length < *min {
                fail("string_too_short", format!("String should have at least {min} characters"));
            } else if length > *max {
                fail("string_too_long", format!("String should have at most {max} characters"));
            }
        }
        (Shape::DateTime, Value::String(text)) => {
            if chrono::DateTime::parse_from_rfc3339(text).is_err()
                && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_err()
            {
                fail("datetime_from_date_parsing", "Input should be a valid datetime".to_owned());
            }
        }
        (Shape::OneOf(allowed), Value::String(text)) => {
            if !allowed.contains(&text.as_str()) {
                fail("enum", format!("Input should be {}", allowed.join(", ")));
            }
        }
        (Shape::Text { .. } | Shape::DateTime | Shape::OneOf(_), _) => {
            fail("string_type", "Input should be a valid string".to_owned());
        }
        (Shape::Bool, Value::Bool(_)) => {}
        (Shape::Bool, _) => fail("bool_type", "Input should be a valid boolean".to_owned()),
        (Shape::List(item), Value::Array(items)) => {
            for (index, value) in items.iter().enumerate() {
                location.push(index.to_string());
                check_at(value, item, location, found);
                location.pop();
            }
        }
        (Shape::List(_), _) => fail("list_type", "Input should be a valid list".to_owned()),
        (Shape::Model(fields), Value::Object(object)) => {
            for field in fields.iter() {
                location.push(field.name.to_owned());
                match object.get(field.name) {
                    Some(value) => check_at(value, &field.shape, location, found),
                    None if field.required => found.push(Violation {
                        location: location.clone(),
                        message: "Field required".to_owned(),
                        kind: "missing",
                    }),
                    None => {}
                }
                location.pop();
            }
            for key in object.keys().filter(|key| !fields.iter().any(|f| f.name == key.as_str())) {
                location.push(key.clone());
                found.push(Violation {
                    location: location.clone(),
                    message: "Extra inputs are not permitted".to_owned(),
                    kind: "extra_forbidden",
                });
                location.pop();
            }
        }
        (Shape::Model(_), _) => {
            fail(
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from".to_owned(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_anywhere_and_missing_fields_are_named_by_where_they_are() {
        let body = json!({
            "customer_user": {"id": "usr"},
            "settings": {"products": {"accounts": {"prefetch": true}, "transactions": {"prefetch": "yes"}}},
        });
        let found: Vec<(String, &str)> =
            check(&body, &CREATE_LINK_SESSION).into_iter().map(|v| (v.location.join("."), v.kind)).collect();
        assert_eq!(
            found,
            [
                ("body.settings.products.transactions.prefetch".to_owned(), "bool_type"),
                ("body.settings.products.accounts".to_owned(), "extra_forbidden"),
                ("body.customer_user.id".to_owned(), "string_too_short"),
                ("body.redirect_uri".to_owned(), "missing"),
            ]
        );
        assert!(check(&json!({"webhook": null}), &UPDATE_LINK).is_empty(), "null removes the webhook");
        assert_eq!(check(&json!({"products": ["accounts", "cash"]}), &REFRESH_PRODUCTS)[0].kind, "enum");
    }
}
