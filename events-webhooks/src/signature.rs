//! Standard Webhooks 1.0 signatures: `webhook-signature: v1,<base64>` where
//! the base64 is HMAC-SHA256, keyed by the secret's bytes (the base64 after
//! `whsec_`), of `"{webhook-id}.{webhook-timestamp}.{body}"`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a `webhook-timestamp` may be from now for [`verify`] to accept
/// it, either way (the spec's suggestion).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// How many random bytes a generated secret holds.
const SECRET_BYTES: usize = 32;

/// Why a signature could not be made or was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The secret is not `whsec_` followed by base64.
    #[error("the secret is not `whsec_` followed by base64 of at least one byte")]
    BadSecret,
    /// The `webhook-timestamp` is older than the tolerance allows.
    #[error("the webhook timestamp {timestamp} is more than {}s in the past", TOLERANCE.as_secs())]
    TooOld {
        /// The timestamp given.
        timestamp: i64,
    },
    /// The `webhook-timestamp` is further in the future than the tolerance
    /// allows.
    #[error("the webhook timestamp {timestamp} is more than {}s in the future", TOLERANCE.as_secs())]
    TooNew {
        /// The timestamp given.
        timestamp: i64,
    },
    /// No `v1,` signature of the header matches the body.
    #[error("no v1 signature in the header matches the body")]
    NoMatch,
}

/// A decoded signing secret: the key bytes, ready to sign many messages.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Decodes `whsec_<base64>` (the prefix may be left out, as the
    /// spec's libraries allow).
    pub fn parse(secret: &str) -> Result<Secret, SignatureError> {
        let text = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD
            .decode(text)
            .map_err(|_| SignatureError::BadSecret)?;
        if key.is_empty() {
            return Err(SignatureError::BadSecret);
        }
        Ok(Secret { key })
    }

    /// A new secret of 32 random bytes, written `whsec_<base64>`.
    pub fn generate() -> Result<String, getrandom::Error> {
        let mut key = [0u8; SECRET_BYTES];
        getrandom::fill(&mut key)?;
        Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value for one message: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Checks a `webhook-signature` header (space-separated
    /// `version,signature` pairs; one matching `v1` is enough) against the
    /// message, in constant time per signature, with the timestamp within
    /// [`TOLERANCE`] of `now`.
    pub fn verify_at(
        &self,
        msg_id: &str,
        timestamp: i64,
        signatures: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let now = unix_seconds(now);
        let tolerance = TOLERANCE.as_secs() as i64;
        if timestamp < now.saturating_sub(tolerance) {
            return Err(SignatureError::TooOld { timestamp });
        }
        if timestamp > now.saturating_add(tolerance) {
            return Err(SignatureError::TooNew { timestamp });
        }
        let mac = self.mac(msg_id, timestamp, body);
        let matched = signatures
            .split(' ')
            .filter_map(|pair| pair.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, tag)| STANDARD.decode(tag).ok())
            // `verify_slice` compares in constant time.
            .any(|tag| mac.clone().verify_slice(&tag).is_ok());
        if matched {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

/// The `webhook-signature` value of one message: `v1,<base64 of
/// HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}")>`.
///
/// ```
/// // The Standard Webhooks libraries' test vector.
/// let signature = events_webhooks::sign(
///     "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
///     "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
///     1649367553,
///     br#"{"email":"test@example.com","username":"test_user"}"#,
/// )?;
/// assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
/// # Ok::<(), events_webhooks::SignatureError>(())
/// ```
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    Ok(Secret::parse(secret)?.sign(msg_id, timestamp, body))
}

/// Checks a received webhook as a receiver would: the `webhook-signature`
/// header `signatures` holds a `v1` signature of `msg_id`, `timestamp`
/// and `body` under `secret` (compared in constant time), and the
/// timestamp is within [`TOLERANCE`] of now.
///
/// ```
/// let now = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_secs() as i64;
/// let secret = events_webhooks::Secret::generate().unwrap();
/// let header = events_webhooks::sign(&secret, "msg_1", now, b"{}")?;
/// events_webhooks::verify(&secret, "msg_1", now, &header, b"{}")?;
/// assert!(events_webhooks::verify(&secret, "msg_1", now, &header, b"{ }").is_err());
/// assert!(events_webhooks::verify(&secret, "msg_1", now - 600, &header, b"{}").is_err());
/// # Ok::<(), events_webhooks::SignatureError>(())
/// ```
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    signatures: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    Secret::parse(secret)?.verify_at(msg_id, timestamp, signatures, body, SystemTime::now())
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(ts: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(ts as u64)
    }

    #[test]
    fn the_spec_test_vector_signs_and_verifies() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIGNATURE);
        let secret = Secret::parse(SECRET).unwrap();
        secret.verify_at(ID, TS, SIGNATURE, BODY, at(TS)).unwrap();
        // The prefix is optional, as in the spec's libraries.
        assert_eq!(
            sign(&SECRET["whsec_".len()..], ID, TS, BODY).unwrap(),
            SIGNATURE
        );
    }

    #[test]
    fn one_matching_signature_among_several_is_enough() {
        let secret = Secret::parse(SECRET).unwrap();
        let many = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v2,abc {SIGNATURE} v1,not-base64"
        );
        secret.verify_at(ID, TS, &many, BODY, at(TS)).unwrap();
        let none = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,x";
        assert_eq!(
            secret.verify_at(ID, TS, none, BODY, at(TS)),
            Err(SignatureError::NoMatch)
        );
        // The same tag under another version does not count.
        let v2 = SIGNATURE.replacen("v1,", "v2,", 1);
        assert_eq!(
            secret.verify_at(ID, TS, &v2, BODY, at(TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_changed_body_id_or_timestamp_fails() {
        let secret = Secret::parse(SECRET).unwrap();
        let other_body = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert!(
            secret
                .verify_at(ID, TS, SIGNATURE, other_body, at(TS))
                .is_err()
        );
        assert!(
            secret
                .verify_at("msg_other", TS, SIGNATURE, BODY, at(TS))
                .is_err()
        );
        assert!(
            secret
                .verify_at(ID, TS + 1, SIGNATURE, BODY, at(TS))
                .is_err()
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let secret = Secret::parse(SECRET).unwrap();
        let window = TOLERANCE.as_secs() as i64;
        secret
            .verify_at(ID, TS, SIGNATURE, BODY, at(TS + window))
            .unwrap();
        secret
            .verify_at(ID, TS, SIGNATURE, BODY, at(TS - window))
            .unwrap();
        assert_eq!(
            secret.verify_at(ID, TS, SIGNATURE, BODY, at(TS + window + 1)),
            Err(SignatureError::TooOld { timestamp: TS })
        );
        assert_eq!(
            secret.verify_at(ID, TS, SIGNATURE, BODY, at(TS - window - 1)),
            Err(SignatureError::TooNew { timestamp: TS })
        );
    }

    #[test]
    fn generated_secrets_are_whsec_and_32_random_bytes() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(
            STANDARD.decode(&a["whsec_".len()..]).unwrap().len(),
            SECRET_BYTES
        );
        assert_eq!(
            Secret::parse("whsec_").unwrap_err(),
            SignatureError::BadSecret
        );
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SignatureError::BadSecret
        );
    }
}
