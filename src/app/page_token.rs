//! Opaque page tokens: a keyset cursor bound to the query it came from and signed with a key
//! every replica shares, so a token cannot be forged, altered or replayed against other filters.
//! The change feed's cursors are signed the same way, around a position of their own.

use crate::domain::ErrorReason;
use crate::error::Error;
use crate::store::Cursor;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hmac};
use subtle::ConstantTimeEq;

const TAG_LEN: usize = 16;
/// Longest page token linkgate issues is far below this; anything longer is not ours.
const MAX_TOKEN_LEN: usize = 1024;

/// Issues and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Body<C> {
    /// Digest of the query this token continues (method, parent and filters), so the token stays
    /// short and does not echo filter values.
    q: String,
    /// The cursor.
    c: C,
}

impl PageTokens {
    /// Page tokens signed with `key` (HMAC-SHA256, truncated to the first 16 bytes).
    pub fn new(key: Vec<u8>) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &key) }
    }

    /// The token that continues `query` after `cursor`.
    pub fn issue(&self, query: &str, cursor: &Cursor) -> String {
        self.issue_as(query, cursor)
    }

    /// The cursor of a token issued for `query`; `None` for an empty token (the first page).
    pub fn check(&self, query: &str, token: &str) -> Result<Option<Cursor>, Error> {
        self.check_as(query, token, "page_token")
    }

    /// The token of any cursor `C` for `query`.
    pub fn issue_as<C: serde::Serialize>(&self, query: &str, cursor: &C) -> String {
        let body = serde_json::to_vec(&Body { q: query_digest(query), c: cursor }).expect("cursor serializes");
        let tag = hmac::sign(&self.key, &body);
        let mut bytes = body;
        bytes.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor `C` of a token issued for `query` and sent in request field `field`; `None`
    /// for an empty token.
    pub fn check_as<C: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        token: &str,
        field: &str,
    ) -> Result<Option<C>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            Error::new(ErrorReason::InvalidPageToken, format!("the {field} is invalid; start again without one"))
                .with("field", field)
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() <= TAG_LEN {
            return Err(invalid());
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        if !bool::from(hmac::sign(&self.key, body).as_ref()[..TAG_LEN].ct_eq(tag)) {
            return Err(invalid());
        }
        let body: Body<C> = serde_json::from_slice(body).map_err(|_| invalid())?;
        if body.q != query_digest(query) {
            return Err(Error::new(
                ErrorReason::InvalidPageToken,
                format!("the {field} belongs to a different query; keep the filters it was issued for"),
            )
            .with("field", field));
        }
        Ok(Some(body.c))
    }
}

fn query_digest(query: &str) -> String {
    crate::crypto::hex(&digest::digest(&digest::SHA256, query.as_bytes()).as_ref()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn cursor() -> Cursor {
        Cursor { key: "2026-01-02".to_owned(), id: Uuid::now_v7() }
    }

    #[test]
    fn a_token_round_trips_for_its_own_query_only() {
        let tokens = PageTokens::new(b"k".to_vec());
        let c = cursor();
        let token = tokens.issue("accounts/x", &c);
        assert_eq!(tokens.check("accounts/x", &token).unwrap(), Some(c));
        assert_eq!(tokens.check("accounts/y", &token).unwrap_err().reason(), ErrorReason::InvalidPageToken);
        assert_eq!(tokens.check("accounts/x", "").unwrap(), None);
    }

    /// A token issued before the move to ring (RustCrypto's hmac and sha2) with the key
    /// `Sealer::derive_key("page tokens")` gives for `[7; 32]`: still accepted, and issued anew
    /// byte for byte, so replicas of either version honour each other's tokens.
    #[test]
    fn a_token_from_before_the_move_to_ring_is_identical() {
        let key = crate::crypto::Sealer::from_keys(&[[7; 32]]).derive_key("page tokens");
        let tokens = PageTokens::new(key);
        let c = Cursor { key: "2026-01-02".to_owned(), id: Uuid::from_u128(0x0123456789abcdef0123456789abcdef) };
        let before = "eyJxIjoiZWExZTkwM2RlZDg2MmMwZTYyNTJlMmNhIiwiYyI6eyJrZXkiOiIyMDI2LTAxLTAyIiwiaWQiOiIwMTIzNDU2Ny04\
                      OWFiLWNkZWYtMDEyMy00NTY3ODlhYmNkZWYifX2aHD-kSGz3u_iHDoyuyGH1";
        assert_eq!(tokens.issue("accounts/x", &c), before);
        assert_eq!(tokens.check("accounts/x", before).unwrap(), Some(c));
    }

    #[test]
    fn altered_forged_and_foreign_tokens_are_rejected() {
        let tokens = PageTokens::new(b"k".to_vec());
        let token = tokens.issue("q", &cursor());
        let mut altered = token.clone().into_bytes();
        let middle = altered.len() / 2;
        altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
        let other_key = PageTokens::new(b"other".to_vec()).issue("q", &cursor());
        for bad in
            [String::from_utf8(altered).unwrap(), other_key, "!!".to_owned(), "AAAA".to_owned(), "x".repeat(5000)]
        {
            assert_eq!(tokens.check("q", &bad).unwrap_err().reason(), ErrorReason::InvalidPageToken, "{bad}");
        }
    }
}

/// Hostile input: whatever a caller sends as a page token is refused cleanly or, if it is one
/// linkgate issued for the same query, understood exactly. `PROPTEST_CASES` scales the budget.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    proptest! {
        #[test]
        fn arbitrary_tokens_are_refused_without_panicking(token in ".{0,2000}") {
            let tokens = PageTokens::new(b"key".to_vec());
            if !token.is_empty() {
                prop_assert_eq!(tokens.check("q", &token).unwrap_err().reason(), ErrorReason::InvalidPageToken);
            }
        }

        #[test]
        fn issued_tokens_round_trip_and_any_single_byte_change_is_caught(
            query in ".{0,200}",
            key in ".{0,100}",
            id in any::<u128>(),
            position in any::<prop::sample::Index>(),
        ) {
            let tokens = PageTokens::new(b"key".to_vec());
            let cursor = Cursor { key, id: Uuid::from_u128(id) };
            let token = tokens.issue(&query, &cursor);
            prop_assert_eq!(tokens.check(&query, &token).unwrap(), Some(cursor));
            let mut bytes = token.into_bytes();
            let at = position.index(bytes.len());
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(tokens.check(&query, &altered).is_err());
        }
    }
}
