//! What the framework's servers (the HTTP API, the dashboard, the
//! broadcast server) share to decide whether a request is let in.

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only, not on where they first differ: for tokens, keys and signatures.
///
/// ```
/// use events_core::auth::constant_time_eq;
/// assert!(constant_time_eq(b"s3cret", b"s3cret"));
/// assert!(!constant_time_eq(b"s3cret", b"s3creT"));
/// assert!(!constant_time_eq(b"s3cret", b"s3cre"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization` header's value in the `Bearer` scheme
/// (the scheme's name in any case, as RFC 9110 wants), trimmed; `None`
/// for any other scheme.
///
/// ```
/// use events_core::auth::bearer_token;
/// assert_eq!(bearer_token("Bearer abc"), Some("abc"));
/// assert_eq!(bearer_token("bearer  abc "), Some("abc"));
/// assert_eq!(bearer_token("Basic YTpi"), None);
/// ```
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_whole_and_same_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        // A difference of 256 in length must not wrap to equal.
        assert!(!constant_time_eq(&[0; 256], &[]));
    }

    #[test]
    fn only_the_bearer_scheme_gives_a_token() {
        assert_eq!(bearer_token("BEARER xyz"), Some("xyz"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Token xyz"), None);
    }
}
