//! Pusher's signatures: the one a client shows to join a private or
//! presence channel, and the one that signs an HTTP API request. Both are
//! hex HMAC-SHA256 with the app's secret, and both are checked in constant
//! time (through [`hmac::Mac::verify_slice`]).
//!
//! With the credentials of Pusher's worked example:
//!
//! ```
//! use events_broadcast::sign;
//!
//! let auth = sign::channel_auth(
//!     "278d425bdf160c739803",
//!     "7ad3773142a6692b25b8",
//!     "1234.1234",
//!     "private-foobar",
//!     None,
//! );
//! assert_eq!(
//!     auth,
//!     "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
//! );
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far an HTTP API request's `auth_timestamp` may be from the server's
/// clock, either way, in seconds (Pusher's 600).
pub const TIMESTAMP_WINDOW: u64 = 600;

/// Why an HTTP API request's signature was refused, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A parameter every signed request carries is missing.
    #[error("the request is not signed: `{0}` is missing")]
    Missing(&'static str),
    /// `auth_key` is not the app's key.
    #[error("auth_key is not this app's key")]
    WrongKey,
    /// `auth_version` is not `1.0`.
    #[error("auth_version must be 1.0")]
    WrongVersion,
    /// `auth_timestamp` is not a number of seconds.
    #[error("auth_timestamp must be seconds since 1970")]
    BadTimestamp,
    /// `auth_timestamp` is further than [`TIMESTAMP_WINDOW`] from now.
    #[error(
        "auth_timestamp is {0} s away from the server's clock, more than the 600 s allowed (a replayed request, or a clock to fix)"
    )]
    Expired(u64),
    /// `body_md5` is not the MD5 of the body.
    #[error("body_md5 is not the MD5 of the body")]
    BodyMismatch,
    /// The signature does not verify.
    #[error("auth_signature does not match: the request was not signed with this app's secret")]
    BadSignature,
}

/// The hex HMAC-SHA256 of `message` under `secret`.
pub fn hmac_hex(secret: &str, message: &str) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

fn mac(secret: &str, message: &str) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(message.as_bytes());
    mac
}

/// Whether `given` (hex) is the HMAC of `message` under `secret`, compared
/// in constant time.
pub fn verify_hmac_hex(secret: &str, message: &str, given: &str) -> bool {
    match hex::decode(given) {
        Ok(bytes) => mac(secret, message).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// What a channel's signature signs: `socket_id:channel`, and
/// `:channel_data` on a presence channel.
fn channel_message(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The `auth` a client sends to join `channel` from `socket_id`:
/// `key:hex(HMAC-SHA256(secret, "socket_id:channel[:channel_data]"))`.
pub fn channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    format!(
        "{key}:{}",
        hmac_hex(secret, &channel_message(socket_id, channel, channel_data))
    )
}

/// Whether `auth` is the app's signature for `socket_id` joining `channel`
/// (with `channel_data` on a presence channel): the key must be the app's
/// and the signature must verify, both compared in constant time.
pub fn verify_channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> bool {
    let Some((given_key, signature)) = auth.split_once(':') else {
        return false;
    };
    let key_ok = constant_time_eq(given_key.as_bytes(), key.as_bytes());
    let signature_ok = verify_hmac_hex(
        secret,
        &channel_message(socket_id, channel, channel_data),
        signature,
    );
    key_ok & signature_ok
}

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only (the framework's one comparison, from `events_core::auth`).
pub use events_core::auth::constant_time_eq;

/// The hex MD5 of an HTTP API request's body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// What an HTTP API request's signature signs:
/// `METHOD\npath\nquery`, the query's parameters (all but
/// `auth_signature`) sorted by their lowercased names and joined
/// unescaped.
pub fn api_string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{}\n{path}\n{query}", method.to_ascii_uppercase())
}

/// The seconds since 1970 now.
pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks a signed HTTP API request against the app's `key` and `secret`:
/// the key, the version, the timestamp within [`TIMESTAMP_WINDOW`] of
/// `now` (seconds since 1970), `body_md5` when there is a body, and the
/// signature in constant time.
pub fn verify_api_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(SignatureError::Missing(name))
    };
    let given_key = get("auth_key")?;
    let timestamp = get("auth_timestamp")?;
    let version = get("auth_version")?;
    let signature = get("auth_signature")?;
    if !constant_time_eq(given_key.as_bytes(), key.as_bytes()) {
        return Err(SignatureError::WrongKey);
    }
    if version != "1.0" {
        return Err(SignatureError::WrongVersion);
    }
    let timestamp: u64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.abs_diff(timestamp);
    if skew > TIMESTAMP_WINDOW {
        return Err(SignatureError::Expired(skew));
    }
    if !body.is_empty() {
        let given = get("body_md5")?;
        if !constant_time_eq(
            given.to_ascii_lowercase().as_bytes(),
            body_md5(body).as_bytes(),
        ) {
            return Err(SignatureError::BodyMismatch);
        }
    }
    if !verify_hmac_hex(secret, &api_string_to_sign(method, path, params), signature) {
        return Err(SignatureError::BadSignature);
    }
    Ok(())
}

/// The query string of a signed HTTP API request, as a Pusher server
/// library makes it: `extra` parameters (`info=..`) plus `auth_key`,
/// `auth_timestamp` (`timestamp`), `auth_version`, `body_md5` (when `body`
/// is not empty) and `auth_signature`, percent-encoded.
///
/// ```
/// use events_broadcast::sign;
/// // Pusher's worked example: POST /apps/3/events.
/// let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
/// let query = sign::signed_query(
///     "278d425bdf160c739803", "7ad3773142a6692b25b8",
///     "POST", "/apps/3/events", &[], body, 1353088179,
/// );
/// assert!(query.ends_with(
///     "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
/// ));
/// ```
pub fn signed_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> String {
    let mut params: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    params.push(("auth_key".into(), key.into()));
    params.push(("auth_timestamp".into(), timestamp.to_string()));
    params.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        params.push(("body_md5".into(), body_md5(body)));
    }
    let signature = hmac_hex(secret, &api_string_to_sign(method, path, &params));
    params.push(("auth_signature".into(), signature));
    serde_urlencoded::to_string(&params).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pusher's documented credentials and socket id.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const SOCKET: &str = "1234.1234";

    #[test]
    fn private_channel_vector() {
        let auth = channel_auth(KEY, SECRET, SOCKET, "private-foobar", None);
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            SOCKET,
            "private-foobar",
            None,
            &auth
        ));
    }

    #[test]
    fn presence_channel_vector() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth = channel_auth(KEY, SECRET, SOCKET, "presence-foobar", Some(data));
        assert_eq!(
            auth,
            "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            SOCKET,
            "presence-foobar",
            Some(data),
            &auth
        ));
        // The data is signed as sent: any change breaks it.
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            SOCKET,
            "presence-foobar",
            Some(r#"{"user_id":11,"user_info":{"name":"Mr. Channels"}}"#),
            &auth
        ));
    }

    #[test]
    fn refused_channel_signatures() {
        let good = channel_auth(KEY, SECRET, SOCKET, "private-foobar", None);
        let (_, signature) = good.split_once(':').expect("key:signature");
        for bad in [
            String::new(),
            signature.to_owned(),
            format!("other-key:{signature}"),
            format!("{KEY}:"),
            format!("{KEY}:zz"),
            format!("{KEY}:{}", &signature[..62]),
            format!("{KEY}:{}0", &signature[..63]),
        ] {
            assert!(
                !verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, &bad),
                "{bad:?} should be refused"
            );
        }
        // Another socket, another channel, another secret.
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            "1234.1235",
            "private-foobar",
            None,
            &good
        ));
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            SOCKET,
            "private-foobaz",
            None,
            &good
        ));
        assert!(!verify_channel_auth(
            KEY,
            "another",
            SOCKET,
            "private-foobar",
            None,
            &good
        ));
    }

    /// Pusher's HTTP API worked example: triggering `foo` on `project-3`.
    const BODY: &[u8] = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const TIMESTAMP: u64 = 1_353_088_179;

    fn example_params() -> Vec<(String, String)> {
        vec![
            ("auth_key".into(), KEY.into()),
            ("auth_timestamp".into(), TIMESTAMP.to_string()),
            ("auth_version".into(), "1.0".into()),
            ("body_md5".into(), body_md5(BODY)),
        ]
    }

    #[test]
    fn http_api_vector() {
        assert_eq!(body_md5(BODY), "ec365a775a4cd0599faeb73354201b6f");
        let params = example_params();
        let to_sign = api_string_to_sign("POST", "/apps/3/events", &params);
        assert_eq!(
            to_sign,
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
        );
        assert_eq!(
            hmac_hex(SECRET, &to_sign),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        let mut signed = params;
        signed.push((
            "auth_signature".into(),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c".into(),
        ));
        assert_eq!(
            verify_api_request(
                KEY,
                SECRET,
                "POST",
                "/apps/3/events",
                &signed,
                BODY,
                TIMESTAMP + 30
            ),
            Ok(())
        );
    }

    #[test]
    fn parameters_sort_by_lowercased_name() {
        let params = vec![
            ("Name".to_owned(), "Something else".to_owned()),
            ("auth_key".to_owned(), "foo".to_owned()),
        ];
        assert_eq!(
            api_string_to_sign("get", "/x", &params),
            "GET\n/x\nauth_key=foo&name=Something else"
        );
    }

    #[test]
    fn http_api_refusals() {
        let signed = |params: Vec<(String, String)>| {
            let mut params = params;
            let sig = hmac_hex(
                SECRET,
                &api_string_to_sign("POST", "/apps/3/events", &params),
            );
            params.push(("auth_signature".into(), sig));
            params
        };
        let verify = |params: &[(String, String)], body: &[u8], now: u64| {
            verify_api_request(KEY, SECRET, "POST", "/apps/3/events", params, body, now)
        };
        let good = signed(example_params());
        assert_eq!(verify(&good, BODY, TIMESTAMP - 600), Ok(()));
        assert_eq!(verify(&good, BODY, TIMESTAMP + 600), Ok(()));
        assert_eq!(
            verify(&good, BODY, TIMESTAMP + 601),
            Err(SignatureError::Expired(601))
        );
        assert_eq!(
            verify(&good, BODY, TIMESTAMP - 601),
            Err(SignatureError::Expired(601))
        );
        assert_eq!(
            verify(&good, b"{}", TIMESTAMP),
            Err(SignatureError::BodyMismatch)
        );
        let mut tampered = good.clone();
        tampered.push(("socket_id".into(), "1.2".into()));
        assert_eq!(
            verify(&tampered, BODY, TIMESTAMP),
            Err(SignatureError::BadSignature)
        );
        let wrong_key: Vec<_> = good
            .iter()
            .map(|(k, v)| {
                if k == "auth_key" {
                    (k.clone(), "nope".to_owned())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        assert_eq!(
            verify(&wrong_key, BODY, TIMESTAMP),
            Err(SignatureError::WrongKey)
        );
        let no_md5 = signed(
            example_params()
                .into_iter()
                .filter(|(k, _)| k != "body_md5")
                .collect(),
        );
        assert_eq!(
            verify(&no_md5, BODY, TIMESTAMP),
            Err(SignatureError::Missing("body_md5"))
        );
        let unsigned: Vec<_> = good
            .iter()
            .filter(|(k, _)| k != "auth_signature")
            .cloned()
            .collect();
        assert_eq!(
            verify(&unsigned, BODY, TIMESTAMP),
            Err(SignatureError::Missing("auth_signature"))
        );
        let other_version = signed(
            example_params()
                .into_iter()
                .map(|(k, v)| {
                    if k == "auth_version" {
                        (k, "2.0".to_owned())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        );
        assert_eq!(
            verify(&other_version, BODY, TIMESTAMP),
            Err(SignatureError::WrongVersion)
        );
        // A GET with no body needs no body_md5.
        let get: Vec<(String, String)> = {
            let mut params = vec![
                ("auth_key".to_owned(), KEY.to_owned()),
                ("auth_timestamp".to_owned(), TIMESTAMP.to_string()),
                ("auth_version".to_owned(), "1.0".to_owned()),
                ("info".to_owned(), "user_count".to_owned()),
            ];
            let sig = hmac_hex(
                SECRET,
                &api_string_to_sign("GET", "/apps/3/channels", &params),
            );
            params.push(("auth_signature".into(), sig));
            params
        };
        assert_eq!(
            verify_api_request(KEY, SECRET, "GET", "/apps/3/channels", &get, b"", TIMESTAMP),
            Ok(())
        );
        assert_eq!(
            verify_api_request(KEY, SECRET, "GET", "/apps/4/channels", &get, b"", TIMESTAMP),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn signed_query_round_trips() {
        let query = signed_query(
            KEY,
            SECRET,
            "GET",
            "/apps/3/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            b"",
            TIMESTAMP,
        );
        let params: Vec<(String, String)> = serde_urlencoded::from_str(&query).expect("a query");
        assert_eq!(
            verify_api_request(
                KEY,
                SECRET,
                "GET",
                "/apps/3/channels",
                &params,
                b"",
                TIMESTAMP
            ),
            Ok(())
        );
    }

    #[test]
    fn comparisons_look_at_everything() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
