//! Deck's published request bodies for the legacy endpoints linkgate calls, transcribed from the
//! OpenAPI definition Deck publishes with its Go SDK (github.com/buildwithdeck/sdk-go,
//! `.speakeasy/out.openapi.yaml`, July 2025), and a checker that holds a JSON body to them.
//!
//! Every schema there is closed (`additionalProperties: false`), so a key not listed is an error.
//! `/sustainability/get` is in no version of the definition; its body is the `{access_token}` of
//! Deck's own quickstart (datadeckapi/quickstart, `nodejs/src/server.js`), like every product
//! endpoint's.

use serde_json::Value;

/// A value's type, as the definition gives it.
pub enum Kind {
    /// A string of at least `min` and at most `max` characters.
    Text { min: usize, max: usize },
    /// A string in `format: uuid`.
    Uuid,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A boolean.
    Bool,
    /// An array of one kind.
    Array(&'static Kind),
    /// A closed object.
    Object(&'static [Property]),
}

/// A property of an object schema.
pub struct Property {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// `nullable: true`: JSON null is allowed.
    pub nullable: bool,
}

const fn required(name: &'static str, kind: Kind) -> Property {
    Property { name, kind, required: true, nullable: false }
}

/// Optional and nullable, as most of Deck's optional properties are.
const fn optional(name: &'static str, kind: Kind) -> Property {
    Property { name, kind, required: false, nullable: true }
}

/// Any string.
const TEXT: Kind = Kind::Text { min: 0, max: usize::MAX };
/// `minLength: 1`.
const NON_EMPTY: Kind = Kind::Text { min: 1, max: usize::MAX };

/// `LinkTokenRequestResponse`.
const LINK_TOKEN: &[Property] = &[required("link_token", NON_EMPTY)];
/// `AccessTokenRequest`.
const ACCESS_TOKEN: &[Property] = &[required("access_token", NON_EMPTY)];

/// `LinkTokenCreateRequest` (the October 2025 version adds `customization_name`).
const LINK_TOKEN_CREATE: &[Property] = &[
    optional(
        "language",
        Kind::OneOf(&["EN", "ES", "FR", "DE", "IT", "PT", "NL", "PL", "SV", "DA", "NO", "ET", "LT", "LV", "RO"]),
    ),
    optional("countries", Kind::Array(&TEXT)),
    optional("source_ids", Kind::Array(&Kind::Uuid)),
    optional("source_types", Kind::Array(&TEXT)),
    optional("beta_source_status", Kind::OneOf(&["LiveAndBeta", "OnlyLive", "OnlyBeta"])),
    optional(
        "update",
        Kind::Object(&[
            required("access_token", NON_EMPTY),
            required("mode", Kind::OneOf(&["UpdateCredentials", "Refresh", "UpdateAccountSelection"])),
        ]),
    ),
    optional("webhook_url", TEXT),
    optional("auto_refresh", Kind::Bool),
    optional("parsing_method", Kind::OneOf(&["PdfOnly", "Basic", "FullSustainability", "None"])),
    optional("latest_invoice_only", Kind::Bool),
];

/// Request bodies by path under `/api/v1`.
pub const REQUEST_BODIES: &[(&str, &[Property])] = &[
    ("/link/token/create", LINK_TOKEN_CREATE),
    (
        "/link/sources",
        &[
            required("link_token", NON_EMPTY),
            optional("source_id", Kind::Uuid),
            optional("search", Kind::Text { min: 3, max: 255 }),
        ],
    ),
    (
        "/link/connect",
        &[
            required("link_token", NON_EMPTY),
            required("source_id", Kind::Uuid),
            required(
                "fields",
                Kind::Array(&Kind::Object(&[required("field_name", TEXT), required("field_value", TEXT)])),
            ),
            optional("terms_of_use_url", TEXT),
            optional("privacy_policy_url", TEXT),
        ],
    ),
    ("/link/connection/status", LINK_TOKEN),
    ("/link/authentication/mfa/get", LINK_TOKEN),
    ("/link/authentication/mfa/answer", &[required("link_token", NON_EMPTY), required("answer", NON_EMPTY)]),
    ("/link/account/list", LINK_TOKEN),
    (
        "/link/account/select",
        &[
            required("link_token", NON_EMPTY),
            Property { name: "accounts", kind: Kind::Array(&Kind::Uuid), required: false, nullable: false },
        ],
    ),
    ("/connection/public_token/exchange", &[required("public_token", NON_EMPTY)]),
    ("/connection/context", ACCESS_TOKEN),
    ("/connection/access_token/invalidate", ACCESS_TOKEN),
    (
        "/connection/refresh",
        &[
            required("access_token", NON_EMPTY),
            Property { name: "account_numbers", kind: Kind::Array(&TEXT), required: false, nullable: false },
        ],
    ),
    ("/connection/destroy", ACCESS_TOKEN),
    ("/sustainability/get", ACCESS_TOKEN),
];

/// Why `body`, sent to `path`, breaks Deck's definition; `Ok` when it keeps to it.
pub fn check_request(path: &str, body: &Value) -> Result<(), String> {
    let (_, schema) = REQUEST_BODIES
        .iter()
        .find(|(documented, _)| *documented == path)
        .ok_or_else(|| format!("{path} has no request body in Deck's definition"))?;
    check_object(path, schema, body)
}

fn check_object(at: &str, schema: &[Property], value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or_else(|| format!("{at}: not an object"))?;
    if let Some(unknown) = object.keys().find(|key| !schema.iter().any(|p| p.name == key.as_str())) {
        return Err(format!("{at}: {unknown:?} is not a property of the schema"));
    }
    for property in schema {
        let at = format!("{at}.{}", property.name);
        match object.get(property.name) {
            None if property.required => return Err(format!("{at}: required, missing")),
            None => {}
            Some(Value::Null) if property.nullable && !property.required => {}
            Some(value) => check_value(&at, &property.kind, value)?,
        }
    }
    Ok(())
}

fn check_value(at: &str, kind: &Kind, value: &Value) -> Result<(), String> {
    let text = || value.as_str().ok_or_else(|| format!("{at}: not a string"));
    match kind {
        Kind::Text { min, max } => {
            let length = text()?.chars().count();
            if length < *min || length > *max {
                return Err(format!("{at}: {length} characters, outside {min}..={max}"));
            }
        }
        Kind::Uuid => {
            uuid::Uuid::parse_str(text()?).map_err(|_| format!("{at}: not a UUID"))?;
        }
        Kind::OneOf(values) => {
            let text = text()?;
            if !values.contains(&text) {
                return Err(format!("{at}: {text:?} is not one of {values:?}"));
            }
        }
        Kind::Bool => {
            value.as_bool().ok_or_else(|| format!("{at}: not a boolean"))?;
        }
        Kind::Array(item) => {
            let items = value.as_array().ok_or_else(|| format!("{at}: not an array"))?;
            for (index, element) in items.iter().enumerate() {
                check_value(&format!("{at}[{index}]"), item, element)?;
            }
        }
        Kind::Object(properties) => check_object(at, properties, value)?,
    }
    Ok(())
}
