//! What MoneyKit's API accepts, per endpoint linkgate calls, as its published SDK declares it
//! (moneykit-python `moneykit/api/*.py`: method, path, query parameters with their types and
//! ranges, headers, and the request model of the body, whose closed schemas live with the mock in
//! `linkgate_mocks::moneykit::schema`), and the check of a request the MoneyKit mock kept
//! (`GET /__admin/requests`) against it. A test records every request the adapter sends through a
//! whole flow and checks each, so a key, parameter or header MoneyKit does not document cannot
//! hide behind a mock that tolerates it.

use linkgate_mocks::moneykit::schema::{self, Shape};
use serde_json::Value;

/// One endpoint: `path` segments `{}` stand for an id.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    auth: Auth,
    body: Body,
    query: &'static [(&'static str, Param)],
}

/// How a call proves who sends it.
enum Auth {
    /// `Authorization: Bearer …` and `MoneyKit-Version`.
    Bearer,
    /// The token grant itself: client id and secret in the form.
    Grant,
    /// The JWKS: `X-Client-Id`, no bearer.
    ClientId,
}

/// What a call's body is.
enum Body {
    None,
    Json(&'static Shape),
    /// Form fields: name and whether it is required.
    Form(&'static [(&'static str, bool)]),
}

/// A query parameter's type.
#[derive(Clone, Copy)]
enum Param {
    Text,
    Bool,
    Date,
    /// An integer in the range.
    Int(u64, u64),
}

const ACCOUNT_IDS: (&str, Param) = ("account_ids", Param::Text);
const PAGED: &[(&str, Param)] = &[
    ("page", Param::Int(1, u64::MAX)),
    ("size", Param::Int(1, 1000)),
    ACCOUNT_IDS,
    ("start_date", Param::Date),
    ("end_date", Param::Date),
];

const fn get(path: &'static str, query: &'static [(&'static str, Param)]) -> Endpoint {
    Endpoint { method: "GET", path, auth: Auth::Bearer, body: Body::None, query }
}

const fn json(method: &'static str, path: &'static str, model: &'static Shape) -> Endpoint {
    Endpoint { method, path, auth: Auth::Bearer, body: Body::Json(model), query: &[] }
}

/// MoneyKit's endpoints (M1 to M27 of the reference) that linkgate calls.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "POST",
        path: "/auth/token",
        auth: Auth::Grant,
        body: Body::Form(&[("grant_type", true), ("client_id", true), ("client_secret", true), ("scope", false)]),
        query: &[],
    },
    Endpoint { method: "GET", path: "/.well-known/jwks.json", auth: Auth::ClientId, body: Body::None, query: &[] },
    get(
        "/institutions",
        &[("name", Param::Text), ("featured", Param::Bool), ("cursor", Param::Text), ("limit", Param::Int(1, 1000))],
    ),
    get("/institutions/{}", &[]),
    json("POST", "/link-session", &schema::CREATE_LINK_SESSION),
    json("POST", "/link-session/exchange-token", &schema::EXCHANGE_TOKEN),
    get("/links/{}", &[]),
    json("PATCH", "/links/{}", &schema::UPDATE_LINK),
    Endpoint { method: "DELETE", path: "/links/{}", auth: Auth::Bearer, body: Body::None, query: &[] },
    json("POST", "/links/{}/products", &schema::REFRESH_PRODUCTS),
    Endpoint { method: "POST", path: "/links/{}/reset", auth: Auth::Bearer, body: Body::None, query: &[] },
    get("/links/{}/accounts", &[ACCOUNT_IDS]),
    get("/links/{}/accounts/numbers", &[]),
    get("/links/{}/identity", &[ACCOUNT_IDS]),
    get("/links/{}/transactions", PAGED),
    get("/links/{}/transactions/sync", &[("cursor", Param::Text), ("size", Param::Int(1, 500))]),
    get("/links/{}/investments/holdings", &[ACCOUNT_IDS]),
    get("/links/{}/investments/transactions", PAGED),
];

/// The API version linkgate's wire types follow.
const VERSION: &str = "2023-02-18";

/// The endpoint pattern `request` was sent to (`METHOD /path` with `{}` for ids), and every way it
/// departs from what MoneyKit publishes for it.
pub fn check(request: &Value) -> (String, Vec<String>) {
    let method = request["method"].as_str().unwrap_or_default();
    let path = request["path"].as_str().unwrap_or_default();
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.method == method && matches(e.path, path)) else {
        return (format!("{method} {path}"), vec!["MoneyKit publishes no such endpoint".to_owned()]);
    };
    let name = format!("{} {}", endpoint.method, endpoint.path);
    let mut problems = Vec::new();
    let header = |name: &str| request["headers"][name].as_str();
    match endpoint.auth {
        Auth::Bearer => {
            if !header("authorization").is_some_and(|h| h.starts_with("Bearer ") && h.len() > 7) {
                problems.push("no bearer token".to_owned());
            }
            if header("moneykit-version") != Some(VERSION) {
                problems.push(format!("MoneyKit-Version is not {VERSION}"));
            }
        }
        Auth::ClientId if header("x-client-id").is_none() => problems.push("no X-Client-Id".to_owned()),
        Auth::Grant if header("authorization").is_some() => problems.push("a bearer on the token grant".to_owned()),
        Auth::ClientId | Auth::Grant => {}
    }
    let content_type = header("content-type");
    let body = &request["body"];
    match endpoint.body {
        Body::None if !body.is_null() => problems.push("a body where MoneyKit takes none".to_owned()),
        Body::None => {}
        Body::Json(model) => {
            if !content_type.is_some_and(|c| c.starts_with("application/json")) {
                problems.push(format!("content type {content_type:?}, not JSON"));
            }
            problems.extend(
                schema::check(body, model).into_iter().map(|v| format!("{}: {}", v.location.join("."), v.message)),
            );
        }
        Body::Form(fields) => {
            if !content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
                problems.push(format!("content type {content_type:?}, not a form"));
            }
            let given = body.as_object().cloned().unwrap_or_default();
            problems.extend(
                given
                    .keys()
                    .filter(|k| !fields.iter().any(|(f, _)| f == k))
                    .map(|k| format!("form field {k} is not published")),
            );
            problems.extend(
                fields
                    .iter()
                    .filter(|(f, required)| *required && !given.contains_key(*f))
                    .map(|(f, _)| format!("form field {f} missing")),
            );
        }
    }
    let query = request["query"].as_str().unwrap_or_default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match endpoint.query.iter().find(|(name, _)| *name == key) {
            None => problems.push(format!("query parameter {key} is not published")),
            Some((_, param)) if !fits(*param, &value) => {
                problems.push(format!("query parameter {key}={value} is not valid"))
            }
            Some(_) => {}
        }
    }
    (name, problems)
}

/// Whether `path` is an instance of `pattern`.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| *p == *s || (*p == "{}" && !s.is_empty()))
}

fn fits(param: Param, value: &str) -> bool {
    match param {
        Param::Text => true,
        Param::Bool => matches!(value, "true" | "false"),
        Param::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
        Param::Int(min, max) => value.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)),
    }
}
