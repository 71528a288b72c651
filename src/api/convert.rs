//! Conversions between domain types and their protobuf form. Outbound conversions cannot fail;
//! inbound enum conversions reject UNSPECIFIED and unknown numbers with a field violation.

use crate::domain::{self, Timestamp};
use crate::error::{Error, Result};
use crate::pb;
use crate::providers::{Institution, InstitutionKind};

/// A protobuf timestamp.
pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn money(value: &domain::Money) -> pb::Money {
    pb::Money { amount: value.amount_text(), currency: value.currency.clone() }
}

fn quantity(value: domain::Decimal) -> String {
    domain::money::format_decimal(value, 0)
}

/// Maps every variant of a domain enum onto its protobuf twin, both ways.
macro_rules! enum_map {
    ($domain:ty, $pb:ty, { $($d:ident => $p:ident),+ $(,)? }) => {
        impl From<$domain> for $pb {
            fn from(value: $domain) -> Self {
                match value { $(<$domain>::$d => <$pb>::$p,)+ }
            }
        }

        impl TryFrom<$pb> for $domain {
            type Error = ();
            fn try_from(value: $pb) -> std::result::Result<Self, ()> {
                match value { $(<$pb>::$p => Ok(<$domain>::$d),)+ #[allow(unreachable_patterns)] _ => Err(()) }
            }
        }
    };
}

enum_map!(domain::Product, pb::Product, {
    Accounts => Accounts, Transactions => Transactions, Investments => Investments,
    Identity => Identity, Statements => Statements, AccountNumbers => AccountNumbers,
});
enum_map!(domain::ProductState, pb::ProductState, {
    NotReady => NotReady, Ready => Ready, Refreshing => Refreshing, Failed => Failed, Unsupported => Unsupported,
});
enum_map!(domain::ConnectionState, pb::ConnectionState, {
    Pending => Pending, Ready => Ready, Refreshing => Refreshing, Stale => Stale,
    LoginRequired => LoginRequired, Error => Error, Disconnected => Disconnected, Deleted => Deleted,
});
enum_map!(domain::ConnectionEventType, pb::ConnectionEventType, {
    StateChanged => StateChanged, LoginRepaired => LoginRepaired,
    ConsentExpiring => ConsentExpiring, ConsentExpired => ConsentExpired,
    NewAccounts => NewAccounts, DataUpdated => DataUpdated,
});
enum_map!(domain::LinkSessionState, pb::LinkSessionState, {
    Created => Created, Connecting => Connecting, MfaRequired => MfaRequired,
    Succeeded => Succeeded, Failed => Failed, Expired => Expired,
});
enum_map!(domain::LinkFlow, pb::LinkFlow, { Hosted => Hosted, Credentials => Credentials });
enum_map!(crate::providers::ProviderHealth, pb::ProviderHealth, {
    Unknown => Unspecified, Healthy => Healthy, Degraded => Degraded,
});
enum_map!(domain::AccountType, pb::AccountType, {
    Checking => Checking, Savings => Savings, CreditCard => CreditCard, Loan => Loan,
    BrokerageCash => BrokerageCash, Utility => Utility, Other => Other,
});
enum_map!(domain::PortfolioType, pb::PortfolioType, {
    Brokerage => Brokerage, Retirement => Retirement, Fund => Fund, Other => Other,
});
enum_map!(domain::AssetType, pb::AssetType, {
    Equity => Equity, Etf => Etf, Fund => Fund, Bond => Bond, Cash => Cash, Other => Other,
});
enum_map!(domain::PhoneNumberType, pb::PhoneNumberType, {
    Home => Home, Work => Work, Mobile => Mobile, Other => Other,
});
enum_map!(domain::PortfolioTransactionType, pb::PortfolioTransactionType, {
    Buy => Buy, Sell => Sell, Dividend => Dividend, Fee => Fee, Deposit => Deposit,
    Withdrawal => Withdrawal, Other => Other,
});

/// Decodes a wire enum value of a request field; UNSPECIFIED and unknown numbers are rejected.
pub fn enum_field<P, D>(field: &str, value: i32) -> Result<D>
where
    P: TryFrom<i32>,
    D: TryFrom<P>,
{
    P::try_from(value)
        .ok()
        .and_then(|p| D::try_from(p).ok())
        .ok_or_else(|| Error::invalid_field(field, format!("{value} is not a valid value")))
}

impl From<&domain::ProductStatus> for pb::ProductStatus {
    fn from(p: &domain::ProductStatus) -> Self {
        pb::ProductStatus {
            product: pb::Product::from(p.product) as i32,
            state: pb::ProductState::from(p.state) as i32,
            refreshed_at: p.refreshed_at.map(timestamp),
            last_attempted_at: p.last_attempted_at.map(timestamp),
        }
    }
}

impl From<&domain::Connection> for pb::Connection {
    fn from(c: &domain::Connection) -> Self {
        pb::Connection {
            id: c.id.to_string(),
            provider: c.provider.clone(),
            institution_id: c.institution_id.clone(),
            institution_name: c.institution_name.clone(),
            external_user_id: c.external_user_id.clone(),
            state: pb::ConnectionState::from(c.state) as i32,
            error: c.error.as_ref().map(|e| pb::ConnectionError {
                reason: e.reason as i32,
                message: e.message.clone(),
                retryable: e.retryable,
                user_action_required: e.user_action_required,
            }),
            products: c.products.iter().map(Into::into).collect(),
            created_at: Some(timestamp(c.created_at)),
            updated_at: Some(timestamp(c.updated_at)),
            last_synced_at: c.last_synced_at.map(timestamp),
            link_session_id: c.link_session_id.map(|id| id.to_string()).unwrap_or_default(),
            consent_expires_at: c.consent_expires_at.map(timestamp),
            duplicate_of_connection_id: c.duplicate_of.map(|id| id.to_string()).unwrap_or_default(),
        }
    }
}

impl From<&domain::ConnectionEvent> for pb::ConnectionEvent {
    fn from(e: &domain::ConnectionEvent) -> Self {
        pb::ConnectionEvent {
            event_id: e.event_id,
            connection: Some((&e.connection).into()),
            occurred_at: Some(timestamp(e.occurred_at)),
            snapshot: e.snapshot,
            // A snapshot describes a state, not a change.
            r#type: if e.snapshot { 0 } else { pb::ConnectionEventType::from(e.kind) as i32 },
            data_changes: e.details.data_changes.filter(|_| !e.snapshot).map(data_changes),
            new_account_ids: if e.snapshot { Vec::new() } else { ids(&e.details.new_account_ids) },
        }
    }
}

fn data_changes(c: domain::DataChanges) -> pb::DataChanges {
    // Kinds the refresh left alone are unset, as the contract says.
    let counts = |c: domain::ChangeCounts| {
        (!c.is_empty()).then_some(pb::RecordChangeCounts {
            added: c.added as i32,
            modified: c.modified as i32,
            removed: c.removed as i32,
        })
    };
    pb::DataChanges {
        accounts: counts(c.accounts),
        transactions: counts(c.transactions),
        portfolios: counts(c.portfolios),
        positions: counts(c.positions),
        portfolio_transactions: counts(c.portfolio_transactions),
        statements: counts(c.statements),
    }
}

/// Ids as the contract writes them.
pub fn ids(ids: &[uuid::Uuid]) -> Vec<String> {
    ids.iter().map(uuid::Uuid::to_string).collect()
}

/// A link session for the caller, with the link token it serves and its public token opened when
/// it has one.
pub fn link_session(
    s: &domain::LinkSession,
    link_token: Option<String>,
    public_token: Option<String>,
) -> pb::LinkSession {
    pb::LinkSession {
        id: s.id.to_string(),
        provider: s.provider.clone(),
        institution_id: s.institution_id.clone().unwrap_or_default(),
        external_user_id: s.external_user_id.clone(),
        state: pb::LinkSessionState::from(s.state) as i32,
        flow: pb::LinkFlow::from(s.flow) as i32,
        products: s.products.iter().map(|p| pb::Product::from(*p) as i32).collect(),
        link_token: link_token.unwrap_or_default(),
        hosted_link_url: s.hosted_link_url.clone().unwrap_or_default(),
        mfa_question: s.mfa_question.clone().unwrap_or_default(),
        mfa_methods: s.mfa_methods.iter().map(|m| pb::MfaMethod { id: m.id.clone(), label: m.label.clone() }).collect(),
        public_token: public_token.unwrap_or_default(),
        public_token_expires_at: s.public_token_expires_at.map(timestamp),
        failure_reason: s.failure_reason.map_or(0, |r| r as i32),
        failure_message: s.failure_message.clone().unwrap_or_default(),
        redirect_uri: s.redirect_uri.clone().unwrap_or_default(),
        created_at: Some(timestamp(s.created_at)),
        updated_at: Some(timestamp(s.updated_at)),
        expires_at: Some(timestamp(s.expires_at)),
        connection_id: s.repair_connection_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

impl From<domain::PublicTokenRecord> for pb::PublicToken {
    fn from(t: domain::PublicTokenRecord) -> Self {
        pb::PublicToken {
            public_token: t.public_token,
            provider: t.provider,
            link_session_id: t.link_session_id.map(|id| id.to_string()).unwrap_or_default(),
            institution_id: t.institution_id,
            external_user_id: t.external_user_id,
            created_at: Some(timestamp(t.created_at)),
            expires_at: Some(timestamp(t.expires_at)),
        }
    }
}

/// An institution of `provider` for the caller.
pub fn institution(provider: &str, i: Institution) -> pb::Institution {
    pb::Institution {
        id: i.id,
        provider: provider.to_owned(),
        name: i.name,
        kind: match i.kind {
            InstitutionKind::Bank => pb::InstitutionKind::Bank,
            InstitutionKind::Broker => pb::InstitutionKind::Broker,
            InstitutionKind::Utility => pb::InstitutionKind::Utility,
        } as i32,
        products: i.products.iter().map(|p| pb::Product::from(*p) as i32).collect(),
        credential_fields: i
            .credential_fields
            .into_iter()
            .map(|f| pb::CredentialField { name: f.name.into_owned(), label: f.label.into_owned(), secret: f.secret })
            .collect(),
        country_codes: i.country_codes,
    }
}

/// An account of `connection_id` for the caller.
pub fn account(connection_id: &str, a: domain::Account) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        connection_id: connection_id.to_owned(),
        r#type: pb::AccountType::from(a.kind) as i32,
        name: a.name,
        mask: a.mask.unwrap_or_default(),
        currency: a.currency,
        balances: Some(pb::Balances {
            current: a.current.as_ref().map(money),
            available: a.available.as_ref().map(money),
            limit: a.limit.as_ref().map(money),
        }),
    }
}

impl From<domain::Transaction> for pb::Transaction {
    fn from(t: domain::Transaction) -> Self {
        pb::Transaction {
            id: t.id.to_string(),
            account_id: t.account_id.to_string(),
            amount: Some(money(&t.amount)),
            date: t.date.to_string(),
            description: t.description,
            pending: t.pending,
            pending_transaction_id: t.pending_transaction_id.map(|id| id.to_string()).unwrap_or_default(),
        }
    }
}

/// A portfolio of `connection_id` for the caller.
pub fn portfolio(connection_id: &str, p: domain::Portfolio) -> pb::Portfolio {
    pb::Portfolio {
        id: p.id.to_string(),
        connection_id: connection_id.to_owned(),
        r#type: pb::PortfolioType::from(p.kind) as i32,
        name: p.name,
        value: Some(money(&p.value)),
        cash_account_id: p.cash_account_id.map(|id| id.to_string()).unwrap_or_default(),
    }
}

impl From<domain::Instrument> for pb::Instrument {
    fn from(i: domain::Instrument) -> Self {
        pb::Instrument {
            isin: i.isin.unwrap_or_default(),
            ticker: i.ticker.unwrap_or_default(),
            name: i.name,
            asset_type: pb::AssetType::from(i.asset_type) as i32,
            currency: i.currency,
            exchange: i.exchange.unwrap_or_default(),
        }
    }
}

impl From<domain::Position> for pb::Position {
    fn from(p: domain::Position) -> Self {
        pb::Position {
            id: p.id.to_string(),
            portfolio_id: p.portfolio_id.to_string(),
            instrument: Some(p.instrument.into()),
            quantity: quantity(p.quantity),
            price: Some(money(&p.price)),
            market_value: Some(money(&p.market_value)),
            cost_basis: p.cost_basis.as_ref().map(money),
        }
    }
}

impl From<domain::PortfolioTransaction> for pb::PortfolioTransaction {
    fn from(t: domain::PortfolioTransaction) -> Self {
        pb::PortfolioTransaction {
            id: t.id.to_string(),
            portfolio_id: t.portfolio_id.to_string(),
            r#type: pb::PortfolioTransactionType::from(t.kind) as i32,
            date: t.date.to_string(),
            instrument: t.instrument.map(Into::into),
            quantity: t.quantity.map(quantity).unwrap_or_default(),
            price: t.price.as_ref().map(money),
            amount: Some(money(&t.amount)),
            description: t.description,
        }
    }
}

impl From<domain::Statement> for pb::Statement {
    fn from(s: domain::Statement) -> Self {
        pb::Statement {
            id: s.id.to_string(),
            account_id: s.account_id.to_string(),
            period_start: s.period_start.to_string(),
            period_end: s.period_end.to_string(),
            issued_on: s.issued_on.to_string(),
            due_on: s.due_on.map(|d| d.to_string()).unwrap_or_default(),
            total_due: Some(money(&s.total_due)),
            usage: s.usage.map(|u| pb::Usage { quantity: quantity(u.quantity), unit: u.unit }),
        }
    }
}

impl From<domain::AccountNumbers> for pb::AccountNumbers {
    fn from(n: domain::AccountNumbers) -> Self {
        pb::AccountNumbers {
            account_id: n.account_id.to_string(),
            ach: n
                .ach
                .into_iter()
                .map(|a| pb::AchNumber {
                    account_number: a.account_number,
                    routing_number: a.routing_number,
                    wire_routing_number: a.wire_routing_number.unwrap_or_default(),
                })
                .collect(),
            eft: n
                .eft
                .into_iter()
                .map(|e| pb::EftNumber {
                    account_number: e.account_number,
                    institution_number: e.institution_number,
                    branch_number: e.branch_number,
                })
                .collect(),
            bacs: n
                .bacs
                .into_iter()
                .map(|b| pb::BacsNumber { account_number: b.account_number, sort_code: b.sort_code })
                .collect(),
            international: n
                .international
                .into_iter()
                .map(|i| pb::InternationalNumber { iban: i.iban, bic: i.bic.unwrap_or_default() })
                .collect(),
        }
    }
}

impl From<domain::AccountOwners> for pb::AccountOwners {
    fn from(o: domain::AccountOwners) -> Self {
        let (account_id, portfolio_id) = match o.of {
            domain::OwnersOf::Account(id) => (id.to_string(), String::new()),
            domain::OwnersOf::Portfolio(id) => (String::new(), id.to_string()),
        };
        pb::AccountOwners { account_id, portfolio_id, owners: o.owners.into_iter().map(Into::into).collect() }
    }
}

impl From<domain::Owner> for pb::Owner {
    fn from(o: domain::Owner) -> Self {
        pb::Owner {
            names: o.names,
            emails: o.emails.into_iter().map(|e| pb::OwnerEmail { address: e.address, primary: e.primary }).collect(),
            phone_numbers: o
                .phone_numbers
                .into_iter()
                .map(|p| pb::OwnerPhoneNumber {
                    number: p.number,
                    r#type: p.kind.map_or(pb::PhoneNumberType::Unspecified, Into::into) as i32,
                    primary: p.primary,
                })
                .collect(),
            addresses: o
                .addresses
                .into_iter()
                .map(|a| pb::OwnerAddress {
                    street: a.street.unwrap_or_default(),
                    city: a.city.unwrap_or_default(),
                    region: a.region.unwrap_or_default(),
                    postal_code: a.postal_code.unwrap_or_default(),
                    country: a.country.unwrap_or_default(),
                    primary: a.primary,
                })
                .collect(),
        }
    }
}

/// Keeps stored names and wire names from drifting apart unnoticed.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StoredName;

    #[test]
    fn every_domain_enum_round_trips_through_its_wire_twin() {
        for product in domain::Product::ALL {
            assert_eq!(domain::Product::try_from(pb::Product::from(*product)), Ok(*product));
        }
        for kind in domain::ConnectionEventType::ALL {
            assert_eq!(domain::ConnectionEventType::try_from(pb::ConnectionEventType::from(*kind)), Ok(*kind));
        }
        for state in domain::ConnectionState::ALL {
            assert_eq!(domain::ConnectionState::try_from(pb::ConnectionState::from(*state)), Ok(*state));
        }
        assert!(domain::Product::try_from(pb::Product::Unspecified).is_err());
    }

    #[test]
    fn the_cores_names_and_numbers_are_the_contracts() {
        for product in domain::Product::ALL {
            assert_eq!(product.contract_name(), pb::Product::from(*product).as_str_name());
        }
        for &reason in domain::ErrorReason::ALL {
            let wire = pb::ErrorReason::try_from(reason as i32).expect("every reason is in the contract");
            assert_eq!(reason.stored_name(), wire.as_str_name());
        }
        // Numbers are not contiguous (a change in flight may hold one back), so every number far
        // beyond the catalogue is tried.
        let contract_reasons = (0..1024).filter(|&value| pb::ErrorReason::try_from(value).is_ok()).count();
        assert_eq!(contract_reasons, domain::ErrorReason::ALL.len(), "the contract has reasons the core lacks");
    }
}
