//! linkgate's own vocabulary: the resources of the contract as plain Rust types, independent of
//! protobuf, SQL and any provider's wire format. Every other layer converts to and from these.

mod connection;
mod data;
mod link_session;
pub mod money;
mod product;
mod reason;
mod tenant;

pub use connection::{
    Connection, ConnectionError, ConnectionEvent, ConnectionEventType, ConnectionState, EventDetails,
};
pub use data::{
    Account, AccountDetails, AccountNumbers, AccountOwners, AccountType, AchNumber, AssetType, BacsNumber,
    ChangeCounts, ConnectionData, DataChanges, EftNumber, Instrument, InternationalNumber, Owner, OwnerAddress,
    OwnerEmail, OwnerPhoneNumber, OwnersOf, PhoneNumberType, Portfolio, PortfolioTransaction, PortfolioTransactionType,
    PortfolioType, Position, SealedAccountDetails, Statement, Transaction, TransactionDelta, Usage, stable_id,
};
pub use link_session::{LinkFlow, LinkSession, LinkSessionState, MfaMethod, PublicTokenRecord, Sealed};
pub use money::{Decimal, Money};
pub use product::{Product, ProductState, ProductStatus};
pub use reason::ErrorReason;
pub use tenant::{ApiKey, AuditAction, AuditEntry, Scope, Tenant, TenantId};

/// Instants are UTC everywhere inside linkgate.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current instant at the precision both stores keep (microseconds), so a value read back
/// equals the value written.
pub fn now() -> Timestamp {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// Calendar dates (booking dates, billing periods) carry no time zone.
pub type Date = chrono::NaiveDate;

/// Text stored and compared as a lowercase snake_case name: the form enums take in the database
/// and in event snapshots, so a renamed Rust variant never changes stored data.
pub trait StoredName: Sized + Copy + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];
    /// The stored name of this variant.
    fn name(self) -> &'static str;
    /// The variant with this stored name.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// Declares a fieldless enum with its stored names, serde in that form, and [`StoredName`].
macro_rules! stored_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $crate::domain::StoredName for $name {
            const ALL: &'static [Self] = &[$(Self::$variant,)+];
            fn name(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::domain::StoredName::name(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <Self as $crate::domain::StoredName>::from_name(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} {text:?}", stringify!($name)))
                })
            }
        }
    };
}
pub(crate) use stored_enum;
