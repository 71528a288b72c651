//! ES256 JSON Web Signatures: how Vumi and MoneyKit sign webhooks, and how linkgate checks them.
//!
//! Only what webhook verification needs, done strictly: compact JWS with `alg` pinned to ES256
//! (a token naming any other algorithm, `none` included, is refused before any key is looked up),
//! keys as P-256 JWKs, signatures as the fixed 64-byte `r || s` of RFC 7518. Signing, which
//! production never does, lives with the provider mocks (`linkgate_mocks::jws`); the tests here
//! sign with it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::ECDSA_P256_SHA256_FIXED;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A public key in JWK form (RFC 7517), as the providers' key endpoints serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `EC`.
    pub kty: String,
    /// Curve: `P-256`.
    pub crv: String,
    /// The x coordinate, base64url without padding.
    pub x: String,
    /// The y coordinate, base64url without padding.
    pub y: String,
    /// Algorithm: `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id, when the key set names it (JWKS); Vumi's single-key endpoint leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use: `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// The protected header of a token, read before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// Token type, when given.
    #[serde(default)]
    pub typ: Option<String>,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
}

/// Why a token was refused. The texts name the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("the token is malformed")]
    Malformed,
    /// `alg` is not ES256.
    #[error("the token's algorithm is not ES256")]
    WrongAlgorithm,
    /// The key is not a P-256 public key.
    #[error("the signing key is not a P-256 key")]
    BadKey,
    /// The signature does not verify under the key.
    #[error("the signature does not verify")]
    BadSignature,
}

fn decode(part: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwsError::Malformed)
}

/// The header of `token`, unverified: enough to pick the key. Refuses any `alg` but ES256.
pub fn header(token: &str) -> Result<Header, JwsError> {
    let encoded = token.split('.').next().ok_or(JwsError::Malformed)?;
    let header: Header = serde_json::from_slice(&decode(encoded)?).map_err(|_| JwsError::Malformed)?;
    if header.alg != "ES256" {
        return Err(JwsError::WrongAlgorithm);
    }
    Ok(header)
}

/// Verifies `token` under `key` and returns its claims.
pub fn verify(token: &str, key: &Jwk) -> Result<serde_json::Map<String, Value>, JwsError> {
    header(token)?;
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    if key.kty != "EC" || key.crv != "P-256" {
        return Err(JwsError::BadKey);
    }
    let (x, y) = (decode(&key.x).map_err(|_| JwsError::BadKey)?, decode(&key.y).map_err(|_| JwsError::BadKey)?);
    if x.len() != 32 || y.len() != 32 {
        return Err(JwsError::BadKey);
    }
    let point = [&[0x04][..], &x, &y].concat();
    let signature = decode(signature_part)?;
    let signed = format!("{header_part}.{payload_part}");
    ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    serde_json::from_slice(&decode(payload_part)?).map_err(|_| JwsError::Malformed)
}

/// Lowercase hex SHA-256 of `body`: the `request_body_sha256` claim binding a token to its body.
pub fn body_sha256(body: &[u8]) -> String {
    super::hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkgate_mocks::jws::SigningKey;
    use serde_json::json;

    fn jwk(key: &SigningKey) -> Jwk {
        serde_json::from_value(key.jwk()).expect("a mock key is a JWK")
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_claims() {
        let key = SigningKey::generate("k1");
        let token = key.sign(&json!({"iat": 1, "request_body_sha256": body_sha256(b"{}")}));
        assert_eq!(header(&token).unwrap().kid.as_deref(), Some("k1"));
        let claims = verify(&token, &jwk(&key)).unwrap();
        assert_eq!(claims["request_body_sha256"], body_sha256(b"{}"));
    }

    #[test]
    fn another_key_a_changed_payload_or_another_algorithm_is_refused() {
        let key = SigningKey::generate("k1");
        let other = SigningKey::generate("k1");
        let token = key.sign(&json!({"iat": 1}));
        assert_eq!(verify(&token, &jwk(&other)), Err(JwsError::BadSignature));

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(json!({"iat": 2}).to_string());
        assert_eq!(verify(&parts.join("."), &jwk(&key)), Err(JwsError::BadSignature));

        for alg in ["none", "HS256", "RS256", "ES384"] {
            let forged = key.sign_with_header(&json!({"alg": alg, "kid": "k1"}), &json!({"iat": 1}));
            assert_eq!(verify(&forged, &jwk(&key)), Err(JwsError::WrongAlgorithm), "{alg}");
        }
        for garbage in ["", "a.b", "a.b.c.d", "!!!.e30.e30"] {
            assert!(verify(garbage, &jwk(&key)).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn the_body_hash_is_lowercase_hex_sha256() {
        assert_eq!(body_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
