//! Sealing of upstream secrets at rest, and hashing of tokens linkgate looks up.
//!
//! A sealed value is `version ‖ key id ‖ nonce ‖ AES-256-GCM ciphertext and tag`, with
//! associated data naming the row it belongs to (tenant, table, id), so a ciphertext copied into
//! another row or tenant does not open. Several keys may be configured: the first seals, every
//! one opens, which is how keys rotate.
//!
//! Everything here is ring's (AES-256-GCM, HMAC-SHA256, SHA-256), the same library rustls, tonic
//! and sqlx already carry. Every value this module produces is stored or handed out, so each is
//! pinned by a test against outputs recorded before the move to ring.
//!
//! Purpose keys ([`Sealer::derive_key`]) are HMAC-SHA256(sealing key, `"linkgate derived key\0"`
//! ‖ purpose), not HKDF. The construction is HKDF-Expand-like but its bytes differ, and both keys
//! derived today guard state that outlives a deploy: the API key pepper (when none is configured)
//! keys the HMACs stored in `api_keys`, so a new derivation would lock out every API key, and the
//! page-token key signs tokens callers hold, which replicas of different versions must agree on
//! during a rollout. A new purpose that protects nothing stored could use `ring::hkdf`; none
//! exists yet.

pub mod jws;

use crate::domain::TenantId;
use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::{digest, hmac};
use secrecy::{ExposeSecret, SecretString};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// One encryption key and its id (derived from the key, so configuration lists keys only).
#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: LessSafeKey,
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
                let mut digest = digest::Context::new(&digest::SHA256);
                digest.update(b"linkgate key id\0");
                digest.update(bytes);
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&digest.finish().as_ref()[..KEY_ID_LEN]);
                let key = UnboundKey::new(&AES_256_GCM, bytes).expect("an AES-256 key is 32 bytes");
                Key { id, cipher: LessSafeKey::new(key) }
            })
            .collect();
        Self { keys, primary }
    }

    /// A new random key, base64-encoded as `LINKGATE_ENCRYPTION_KEY` expects.
    pub fn generate_key() -> String {
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// A key for another purpose (signing page tokens, say), derived from the sealing key so that
    /// every replica holding the same keys derives the same one. HMAC-SHA256 rather than HKDF,
    /// byte for byte as before: see the module documentation.
    pub fn derive_key(&self, purpose: &str) -> Vec<u8> {
        let mut mac = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &self.primary));
        mac.update(b"linkgate derived key\0");
        mac.update(purpose.as_bytes());
        mac.sign().as_ref().to_vec()
    }

    /// Seals `plaintext` for the row named by `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        let mut sealed = Vec::with_capacity(header + plaintext.len() + AES_256_GCM.tag_len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&key.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = key
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed[header..],
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        sealed.extend_from_slice(tag.as_ref());
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
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[1 + KEY_ID_LEN..header]).map_err(|_| OpenError::Malformed)?;
        let mut buffer = sealed[header..].to_vec();
        let plaintext = key
            .cipher
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| OpenError::Forged)?;
        let length = plaintext.len();
        buffer.truncate(length);
        String::from_utf8(buffer).map(SecretString::from).map_err(|_| OpenError::Malformed)
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
    /// `account_details.numbers_sealed`: a connection's full account numbers (row id: the
    /// connection's).
    AccountNumbers,
    /// `account_details.owners_sealed`: the owners of a connection's accounts (row id: the
    /// connection's).
    AccountOwners,
}

impl SealedColumn {
    /// Every sealed column, for key rotation.
    pub const ALL: [SealedColumn; 5] = [
        SealedColumn::ConnectionHandle,
        SealedColumn::SessionToken,
        SealedColumn::SessionUpstreamState,
        SealedColumn::AccountNumbers,
        SealedColumn::AccountOwners,
    ];

    /// The associated data of this column's value in row `id` of `tenant`.
    pub fn context(self, tenant: TenantId, id: uuid::Uuid) -> String {
        match self {
            Self::ConnectionHandle => format!("connection/{tenant}/{id}/handle"),
            Self::SessionToken => format!("link_session/{tenant}/{id}/public_token"),
            Self::SessionUpstreamState => format!("link_session/{tenant}/{id}/upstream_state"),
            Self::AccountNumbers => format!("connection/{tenant}/{id}/account_numbers"),
            Self::AccountOwners => format!("connection/{tenant}/{id}/account_owners"),
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
    digest::digest(&digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

/// SHA-256 of a provider's own id of a connection, the form in which webhooks find their
/// connection (the id may be the secret handle itself, so it is never kept in clear).
pub fn upstream_ref_hash(provider: &str, upstream_ref: &str) -> Vec<u8> {
    let mut digest = digest::Context::new(&digest::SHA256);
    digest.update(provider.as_bytes());
    digest.update(&[0]);
    digest.update(upstream_ref.as_bytes());
    digest.finish().as_ref().to_vec()
}

/// Lowercase hex, two digits a byte: the one hex encoder of linkgate (key ids, digests in
/// claims and page tokens, random suffixes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
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

    #[test]
    fn hex_is_lowercase_with_two_digits_a_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x7e]), "000fa0ff7e");
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&bytes), expected);
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap()).collect()
    }

    /// Outputs recorded with the RustCrypto implementation (aes-gcm, hmac, sha2) this module used
    /// before ring. Each is stored or handed out somewhere, so none may change.
    #[test]
    fn values_from_before_the_move_to_ring_are_byte_identical() {
        let sealer = Sealer::from_keys(&[[7; 32]]);
        assert_eq!(hex(&sealer.keys[0].id), "d90a371f9ed4b714");
        assert_eq!(
            hex(&sealer.derive_key("api key pepper")),
            "db68538b012521d35c4a486d9a9df534ef147a9cc9aa74b7a6687daa244958bd"
        );
        assert_eq!(
            hex(&sealer.derive_key("page tokens")),
            "cdae003afe8c2f5b4abf4699513ba2839e3edda99d1642bf4e3fdc2f673b8e6a"
        );
        assert_eq!(
            hex(&token_hash("public-sandbox-ins_first_bank-0123")),
            "5d5537eabd81a767c4067bec9dfeb9155ab29f5620d1b42bf26e06e2615fd163"
        );
        assert_eq!(
            hex(&upstream_ref_hash("vumi", "conn-42")),
            "a530efe4e56a07ad3130895c93bd6dc40d18e6184077a681ea51ad06b1f880bd"
        );
        let sealed_before =
            unhex("01d90a371f9ed4b714833062aa6a8deb13d88760495d758f61de12f6a7c1caaceae1ce4b89361d48d74cf0557d550aaf9e");
        assert_eq!(sealer.open(&sealed_before, "connection/t1/c1").unwrap().expose_secret(), "access-token");
        assert!(matches!(sealer.open(&sealed_before, "connection/t1/c2"), Err(OpenError::Forged)));
        // Same layout now: version, key id, a fresh nonce, then ciphertext and tag.
        let sealed_now = sealer.seal(b"access-token", "connection/t1/c1");
        assert_eq!(sealed_now.len(), sealed_before.len());
        assert_eq!(sealed_now[..1 + KEY_ID_LEN], sealed_before[..1 + KEY_ID_LEN]);
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
