//! The signing half of ES256 JSON Web Signatures: how Vumi and MoneyKit sign webhooks, and so how
//! these mocks sign theirs. linkgate verifies them with `linkgate::crypto::jws`; production never
//! signs, so this half lives here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::Value;

/// A P-256 signing key with its id: what a provider mock signs webhooks with.
pub struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key named `kid`.
    pub fn generate(kid: impl Into<String>) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("the system random source works");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a freshly generated key parses");
        Self { kid: kid.into(), pair }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as a JWK naming its `kid`.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "alg": "ES256",
            "kid": self.kid,
            "use": "sig",
        })
    }

    /// A compact JWS of `claims` with header `{alg: ES256, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }

    /// A compact JWS under an arbitrary header, signed with this key (tests forge headers with it).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature =
            self.pair.sign(&SystemRandom::new(), signed.as_bytes()).expect("signing with a valid key succeeds");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// Lowercase hex SHA-256 of `body`: the `request_body_sha256` claim binding a token to its body.
pub fn body_sha256(body: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, body).as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}
