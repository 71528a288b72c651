//! The adapter's tables and translations, without a server.

use super::*;
use crate::domain::{AccountType, AssetType, Date, PortfolioTransactionType, PortfolioType, stable_id};

fn status(json: &str) -> wire::Connection {
    serde_json::from_str(json).unwrap()
}

#[test]
fn connection_statuses_map_through_one_table() {
    use UpstreamStatus::*;
    assert_eq!(connection_state(&status(r#"{"status": "PENDING"}"#)), (Importing, true));
    assert_eq!(connection_state(&status(r#"{"status": "UPDATING"}"#)), (Importing, true));
    assert_eq!(connection_state(&status(r#"{"status": "READY", "errorDetails": null}"#)), (Ready, true));
    let errored = r#"{"status": "ERRORED", "errorDetails": {"reason": "INTERNAL_SERVER_ERROR", "type": "VUMI_ERROR", "retryable": true}}"#;
    assert!(matches!(connection_state(&status(errored)), (Failed { retryable: true, .. }, true)));
    assert!(matches!(
        connection_state(&status(r#"{"status": "UPDATE_ERROR"}"#)),
        (Failed { retryable: false, .. }, true)
    ));
    let restore = r#"{"status": "ERRORED", "restoreToken": "123e4567-e89b-12d3-a456-426614174000"}"#;
    assert_eq!(connection_state(&status(restore)), (LoginRequired, true));
    let update = r#"{"status": "UPDATE_ERROR", "updateToken": "123e4567-e89b-12d3-a456-426614174000"}"#;
    assert_eq!(connection_state(&status(update)), (LoginRequired, true), "only the user can update it");
    let ready = r#"{"status": "READY", "updateToken": "123e4567-e89b-12d3-a456-426614174000"}"#;
    assert_eq!(connection_state(&status(ready)), (Ready, true), "an update the user may run is no failure");
    assert_eq!(connection_state(&status(r#"{"status": "HIBERNATING"}"#)), (Importing, false), "unknown keeps polling");
}

#[test]
fn a_refresh_follows_what_the_status_says_vumi_can_update() {
    let rule = |json: &str| refresh_rule(&status(json));
    assert!(rule(r#"{"status": "READY", "hasCredentials": true}"#).is_ok(), "Vumi updates it by itself");
    let manual =
        r#"{"status": "READY", "hasCredentials": true, "updateToken": "123e4567-e89b-12d3-a456-426614174000"}"#;
    assert!(matches!(rule(manual), Err(ProviderError::LoginRequired)), "only the user can update it");
    for without in [r#"{"status": "READY", "hasCredentials": false}"#, r#"{"status": "READY"}"#] {
        assert!(matches!(rule(without), Err(ProviderError::Unsupported(_))), "{without}");
    }
}

#[test]
fn the_session_expiry_is_read_from_the_jwt() {
    let claims = URL_SAFE_NO_PAD.encode(r#"{"exp": 1800000000, "sub": "client"}"#);
    assert_eq!(jwt_expiry(&format!("h.{claims}.s")).unwrap().timestamp(), 1_800_000_000);
    assert!(jwt_expiry("not-a-jwt").is_none());
    assert!(jwt_expiry(&format!("h.{}.s", URL_SAFE_NO_PAD.encode("{}"))).is_none());
}

#[test]
fn data_maps_exactly_with_stable_ids_and_unknown_types_as_other() {
    let fetched = Fetched {
        accounts: serde_json::from_str(
            r#"[{"id": "a1", "portfolio": "p1", "iban": "ES9121000418450200051332", "type": "OTHER",
                 "alias": "Broker cash", "balance": 1234.56, "currency": "eur"}]"#,
        )
        .unwrap(),
        account_transactions: serde_json::from_str(
            r#"[{"id": "t1", "account": "a1", "type": "DIVIDENDS", "amount": 12.30, "currency": "EUR",
                 "date": "2025-06-02T00:00:00Z"},
                {"id": "t2", "account": "a1", "currency": "EUR", "date": "2025-06-03"}]"#,
        )
        .unwrap(),
        portfolios: serde_json::from_str(
            r#"[{"id": "p1", "type": "SPACESHIP", "owners": ["Ana"], "balance": 0.1, "currency": "EUR"}]"#,
        )
        .unwrap(),
        portfolio_transactions: serde_json::from_str(
            r#"[{"id": "x1", "portfolio": "p1", "investment": "i1", "type": "BUY", "titles": 10,
                 "price": 3.9876, "amount": -39.876, "currency": "EUR", "date": "2025-05-01"}]"#,
        )
        .unwrap(),
        positions: serde_json::from_str(
            r#"[{"portfolio": "p1", "investment": "i1", "name": "Banco Santander", "isin": "ES0113900J37",
                 "currency": "EUR", "localCurrency": "EUR", "exchange": "BMEX", "assetType": "STOCK",
                 "titles": 10.5, "amount": 41.8698, "localAmount": 41.8698, "price": 3.9876, "localPrice": 3.9876,
                 "exchangeRate": 1, "weight": 0.45}]"#,
        )
        .unwrap(),
        investments: serde_json::from_str(
            r#"[{"id": "i1", "name": "Banco Santander", "isin": "ES0113900J37", "currency": "EUR",
                 "exchange": "BMEX", "assetType": "STOCK", "unknown": false}]"#,
        )
        .unwrap(),
    };
    let connection_id = Uuid::now_v7();
    let data = connection_data(fetched, connection_id);
    let account = &data.accounts[0];
    assert_eq!(
        (account.kind, account.mask.as_deref(), account.currency.as_str()),
        (AccountType::BrokerageCash, Some("1332"), "EUR")
    );
    assert_eq!(account.current.as_ref().unwrap().amount_text(), "1234.56");
    assert_eq!(data.transactions.len(), 1, "the transaction without an amount is left out");
    assert_eq!(data.transactions[0].amount.amount_text(), "12.30");
    assert_eq!(data.transactions[0].date, "2025-06-02".parse::<Date>().unwrap());
    let portfolio = &data.portfolios[0];
    assert_eq!((portfolio.kind, portfolio.cash_account_id), (PortfolioType::Other, Some(account.id)));
    assert!(!portfolio.name.contains("Ana"), "an owner's name is not a portfolio's: {}", portfolio.name);
    // The account's IBAN is its number; the portfolio names its owner (the account none).
    assert_eq!(data.details.numbers.len(), 1);
    assert_eq!(data.details.numbers[0].account_id, account.id);
    assert_eq!(data.details.numbers[0].international[0].iban, "ES9121000418450200051332");
    assert_eq!(data.details.owners.len(), 1);
    assert_eq!(data.details.owners[0].of, crate::domain::OwnersOf::Portfolio(portfolio.id));
    assert_eq!(data.details.owners[0].owners[0].names, ["Ana"]);
    let position = &data.positions[0];
    assert_eq!(position.quantity.to_string(), "10.5");
    assert_eq!(position.market_value.amount_text(), "41.8698");
    assert_eq!(position.instrument.asset_type, AssetType::Equity);
    assert_eq!(position.portfolio_id, portfolio.id);
    let trade = &data.portfolio_transactions[0];
    assert_eq!((trade.kind, trade.amount.amount_text().as_str()), (PortfolioTransactionType::Buy, "-39.876"));
    assert_eq!(trade.instrument.as_ref().unwrap().isin.as_deref(), Some("ES0113900J37"));
    assert_eq!(account.id, stable_id(connection_id, "account", "a1"));
}
