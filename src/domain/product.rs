//! Data products and their per-connection state.

use super::{Timestamp, stored_enum};

stored_enum! {
    /// A data product a provider can deliver for a connection.
    pub enum Product {
        /// Accounts with balances.
        Accounts = "accounts",
        /// Cash transactions.
        Transactions = "transactions",
        /// Portfolios, positions and portfolio transactions.
        Investments = "investments",
        /// The owners of accounts and portfolios (names, emails, phone numbers, addresses).
        Identity = "identity",
        /// Utility statements.
        Statements = "statements",
        /// The full numbers of accounts (ACH, EFT, BACS, IBAN).
        AccountNumbers = "account_numbers",
    }
}

stored_enum! {
    /// The state of one product on one connection.
    pub enum ProductState {
        /// The first import has not finished.
        NotReady = "not_ready",
        /// Data is available.
        Ready = "ready",
        /// Data is available and an update is running.
        Refreshing = "refreshing",
        /// The last attempt failed; older data, if any, is served.
        Failed = "failed",
        /// Not offered for this connection.
        Unsupported = "unsupported",
    }
}

impl Product {
    /// The contract's value name (`PRODUCT_ACCOUNTS`), which errors name in their metadata. The API
    /// layer's tests check it against the contract.
    pub fn contract_name(self) -> &'static str {
        match self {
            Product::Accounts => "PRODUCT_ACCOUNTS",
            Product::Transactions => "PRODUCT_TRANSACTIONS",
            Product::Investments => "PRODUCT_INVESTMENTS",
            Product::Identity => "PRODUCT_IDENTITY",
            Product::Statements => "PRODUCT_STATEMENTS",
            Product::AccountNumbers => "PRODUCT_ACCOUNT_NUMBERS",
        }
    }
}

/// One product's state on a connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductStatus {
    /// The product.
    pub product: Product,
    /// Its state.
    pub state: ProductState,
    /// Last successful refresh.
    pub refreshed_at: Option<Timestamp>,
    /// Last attempt.
    pub last_attempted_at: Option<Timestamp>,
    /// When a caller's RefreshConnection last had the provider refresh it: what the provider's
    /// refresh limits (`ProviderInfo::refresh_limits`) count from. linkgate's own bookkeeping,
    /// not part of the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_requested_at: Option<Timestamp>,
}

impl ProductStatus {
    /// A product whose first import has not started.
    pub fn not_ready(product: Product) -> Self {
        Self {
            product,
            state: ProductState::NotReady,
            refreshed_at: None,
            last_attempted_at: None,
            refresh_requested_at: None,
        }
    }

    /// Whether there is data to read: it was imported at least once and is not being withdrawn.
    pub fn is_readable(&self) -> bool {
        match self.state {
            ProductState::Ready | ProductState::Refreshing => true,
            ProductState::Failed => self.refreshed_at.is_some(),
            ProductState::NotReady | ProductState::Unsupported => false,
        }
    }
}
