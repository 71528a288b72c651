//! Sealing of upstream secrets at rest, and hashing of tokens linkgate looks up.
//!
//! A sealed value is `version ‖ key id ‖ nonce ‖ AES-256-GCM ciphertext and tag`, with
//! associated data naming the row it belongs to (tenant, table, id), so a ciphertext copied into
//! another row or tenant does not open. Several keys may be configured: the first seals, every
//! one opens, which is how keys rotate.

pub mod jws;

use crate::domain::TenantId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// One encryption key and its id (derived from the key, so configuration lists keys only).
#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

/// Seals and opens upstream secrets. Its `Debug` shows key ids only.
#[derive(Clone)]
pub struct Sealer {
    keys: Vec<Key>,
    /// The sealing key's bytes, kept only to derive purpose keys from.
    primary: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| hex(&k.id)).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not produced by this format.
    #[error("sealed value is malformed")]
    Malformed,
    /// Sealed under a key that is not configured.
    #[error("sealed under unknown key {0}")]
    UnknownKey(String),
    /// Tampered with, or moved to another row.
    #[error("sealed value does not authenticate")]
    Forged,
}

impl Sealer {
    /// A sealer from comma-separated base64 keys of 32 bytes each; the first seals.
    pub fn from_config(keys: &SecretString) -> anyhow::Result<Self> {
        let mut parsed = Vec::new();
        for (n, text) in keys.expose_secret().split(',').map(str::trim).enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| anyhow::anyhow!("LINKGATE_ENCRYPTION_KEY entry {n} is not base64"))?;
            let bytes: [u8; 32] =
                bytes.try_into().map_err(|_| anyhow::anyhow!("LINKGATE_ENCRYPTION_KEY entry {n} is not 32 bytes"))?;
            parsed.push(bytes);
        }
        Ok(Self::from_keys(&parsed))
    }

    /// A sealer from raw keys; the first seals.
    pub fn from_keys(keys: &[[u8; 32]]) -> Self {
        assert!(!keys.is_empty(), "a sealer needs at least one key");
        let primary = keys[0];
        let keys = keys
            .iter()
            .map(|bytes| {
                let digest = Sha256::new().chain_update(b"linkgate key id\0").chain_update(bytes).finalize();
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&digest[..KEY_ID_LEN]);
                Key { id, cipher: Aes256Gcm::new(bytes.into()) }
            })
            .collect();
        Self { keys, primary }
    }

    /// A new random key, base64-encoded as `LINKGATE_ENCRYPTION_KEY` expects.
    pub fn generate_key() -> String {
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// A key for another purpose (signing page tokens, say), derived from the sealing key so that
    /// every replica holding the same keys derives the same one.
    pub fn derive_key(&self, purpose: &str) -> Vec<u8> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.primary).expect("HMAC takes any key length");
        mac.update(b"linkgate derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Seals `plaintext` for the row named by `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&key.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Whether `sealed` is sealed under the current (first) key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.get(1..1 + KEY_ID_LEN) == Some(self.keys[0].id.as_slice())
    }

    /// Opens a value sealed for the row named by `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<SecretString, OpenError> {
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let key_id = &sealed[1..1 + KEY_ID_LEN];
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| OpenError::UnknownKey(hex(key_id)))?;
        let nonce = Nonce::from_slice(&sealed[1 + KEY_ID_LEN..header]);
        let plaintext = key
            .cipher
            .decrypt(nonce, Payload { msg: &sealed[header..], aad: context.as_bytes() })
            .map_err(|_| OpenError::Forged)?;
        String::from_utf8(plaintext).map(SecretString::from).map_err(|_| OpenError::Malformed)
    }
}

/// The columns that hold sealed secrets. Each value is sealed with associated data naming its
/// column, tenant and row, so a ciphertext copied elsewhere does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `connections.handle_sealed`: the provider's permanent handle.
    ConnectionHandle,
    /// `link_sessions.public_token_sealed`: the public token a session issued.
    SessionToken,
    /// `link_sessions.upstream_state_sealed`: what a provider needs between link calls.
    SessionUpstreamState,
}

impl SealedColumn {
    /// Every sealed column, for key rotation.
    pub const ALL: [SealedColumn; 3] =
        [SealedColumn::ConnectionHandle, SealedColumn::SessionToken, SealedColumn::SessionUpstreamState];

    /// The associated data of this column's value in row `id` of `tenant`.
    pub fn context(self, tenant: TenantId, id: uuid::Uuid) -> String {
        match self {
            Self::ConnectionHandle => format!("connection/{tenant}/{id}/handle"),
            Self::SessionToken => format!("link_session/{tenant}/{id}/public_token"),
            Self::SessionUpstreamState => format!("link_session/{tenant}/{id}/upstream_state"),
        }
    }
}

/// The associated data of `provider_sessions.token_sealed` in the row of `key`. Not a
/// [`SealedColumn`]: the rows belong to no tenant and key rotation skips them, because a session
/// token lives an hour and one that no longer opens is simply replaced by a new login.
pub fn provider_session_context(key: &str) -> String {
    format!("provider_session/{key}/token")
}

/// The associated data of `webhook_inbox.body_sealed` for a provider's delivery. Not a
/// [`SealedColumn`] either: deliveries belong to no tenant, nothing reads them back in the normal
/// course, and they are pruned after the event retention, so key rotation skips them.
pub fn webhook_delivery_context(provider: &str, delivery_key: &str) -> String {
    format!("webhook/{provider}/{delivery_key}/body")
}

/// SHA-256 of a token, the form in which linkgate looks tokens up.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// SHA-256 of a provider's own id of a connection, the form in which webhooks find their
/// connection (the id may be the secret handle itself, so it is never kept in clear).
pub fn upstream_ref_hash(provider: &str, upstream_ref: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(provider.as_bytes());
    digest.update([0]);
    digest.update(upstream_ref.as_bytes());
    digest.finalize().to_vec()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row() {
        let sealer = Sealer::from_keys(&[[7; 32]]);
        let sealed = sealer.seal(b"access-token", "connection/t1/c1");
        assert_eq!(sealer.open(&sealed, "connection/t1/c1").unwrap().expose_secret(), "access-token");
        assert!(matches!(sealer.open(&sealed, "connection/t2/c1"), Err(OpenError::Forged)));
        assert!(!sealed.windows(12).any(|w| w == b"access-token"), "plaintext must not appear in the seal");
    }

    #[test]
    fn rotated_keys_still_open_old_values_and_new_values_use_the_first_key() {
        let old = Sealer::from_keys(&[[1; 32]]);
        let sealed_before = old.seal(b"secret", "row");
        let rotated = Sealer::from_keys(&[[2; 32], [1; 32]]);
        assert_eq!(rotated.open(&sealed_before, "row").unwrap().expose_secret(), "secret");
        let sealed_after = rotated.seal(b"secret", "row");
        assert!(matches!(old.open(&sealed_after, "row"), Err(OpenError::UnknownKey(_))));
    }

    #[test]
    fn tampered_values_are_rejected() {
        let sealer = Sealer::from_keys(&[[3; 32]]);
        let mut sealed = sealer.seal(b"secret", "row");
        *sealed.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open(&sealed, "row"), Err(OpenError::Forged)));
        assert!(matches!(sealer.open(&[9, 9], "row"), Err(OpenError::Malformed)));
    }

    #[test]
    fn keys_are_validated_with_their_position() {
        let error = Sealer::from_config(&SecretString::from("not base64!")).unwrap_err();
        assert!(error.to_string().contains("entry 0"));
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        let error =
            Sealer::from_config(&SecretString::from(format!("{},{short}", Sealer::generate_key()))).unwrap_err();
        assert!(error.to_string().contains("entry 1 is not 32 bytes"));
    }
}

/// Hostile input: sealed values come from the database, which an attacker may have written to.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_open(bytes in prop::collection::vec(any::<u8>(), 0..512), context in ".{0,64}") {
            let sealer = Sealer::from_keys(&[[5; 32]]);
            prop_assert!(sealer.open(&bytes, &context).is_err());
        }

        #[test]
        fn sealing_round_trips_and_binds_the_context(plain in ".{0,512}", context in ".{1,64}", other in ".{1,64}") {
            let sealer = Sealer::from_keys(&[[5; 32]]);
            let sealed = sealer.seal(plain.as_bytes(), &context);
            let opened = sealer.open(&sealed, &context).unwrap();
            prop_assert_eq!(opened.expose_secret(), plain.as_str());
            if other != context {
                prop_assert!(sealer.open(&sealed, &other).is_err());
            }
        }
    }
}
