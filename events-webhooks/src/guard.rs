//! What may be delivered to: URLs with an `http(s)` scheme and a host, and
//! addresses that are not loopback, private, link-local (the cloud
//! metadata address among them), unique-local, unspecified, multicast or
//! otherwise reserved — checked on every address a name resolves to, and
//! the connection made to a checked address (see `client.rs`), so a name
//! that resolves to a public address when checked and to a private one
//! when connecting cannot get through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hyper::Uri;

use crate::WebhookError;

/// A URL that passed the syntax checks: where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The URL parsed.
    pub(crate) uri: Uri,
    /// `true` for `https`.
    pub(crate) tls: bool,
    /// The host, without brackets around an IPv6 literal.
    pub(crate) host: String,
    /// The port (the scheme's default when none is written).
    pub(crate) port: u16,
}

impl Target {
    /// The host as an address, when the URL names one.
    pub(crate) fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The key of the endpoint's concurrency limit: scheme, host and port.
    pub(crate) fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// Parses and checks a webhook URL: `http` or `https` (only `https` when
/// `require_https`), a host, no user name or password.
pub(crate) fn parse_url(url: &str, require_https: bool) -> Result<Target, WebhookError> {
    let bad = |why: &str| Err(WebhookError::Invalid(format!("`{url}` {why}")));
    if !url.contains("://") {
        return bad("has no scheme: write it as https://host/path");
    }
    let uri: Uri = match url.trim().parse() {
        Ok(uri) => uri,
        Err(e) => return bad(&format!("is not a URL ({e})")),
    };
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if require_https => {
            return bad(
                "is not https: webhooks are sent over https unless EVENTS_WEBHOOKS_REQUIRE_HTTPS=false",
            );
        }
        Some("http") => false,
        Some(other) => return bad(&format!("has the scheme `{other}`: use https (or http)")),
        None => return bad("has no scheme: write it as https://host/path"),
    };
    let Some(authority) = uri.authority() else {
        return bad("has no host");
    };
    if authority.as_str().contains('@') {
        return bad("carries a user name or password: put credentials in the path or a header");
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return bad("has no host");
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target {
        host: host.to_ascii_lowercase(),
        uri,
        tls,
        port,
    })
}

/// Why `ip` may not be delivered to, in words; `None` when it may.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address (RFC 1918)"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_link_local() {
        "a link-local address (the cloud metadata address among them)"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified (\"this network\") address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if a >= 240 {
        "a reserved or broadcast address"
    } else if a == 192 && b == 0 && c == 0 {
        "an IETF protocol assignment address"
    } else if a == 198 && (b == 18 || b == 19) {
        "a benchmarking address"
    } else {
        return None;
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).map(|_| "an IPv4-mapped IPv6 address of a forbidden IPv4 address");
    }
    let segments = ip.segments();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if segments[0] & 0xfe00 == 0xfc00 {
        "a unique-local address"
    } else if segments[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if segments[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated): ::a.b.c.d.
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        forbidden_v4(v4).map(|_| "an IPv4-compatible IPv6 address of a forbidden IPv4 address")?
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: 64:ff9b::a.b.c.d reaches a.b.c.d.
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        forbidden_v4(v4).map(|_| "a NAT64 address of a forbidden IPv4 address")?
    } else {
        return None;
    })
}

/// Checks every address `host` resolved to: all must be allowed (one
/// forbidden address refuses the name, so a name cannot mix a public
/// address with a private one), unless `allow_private`. Returns the
/// addresses to connect to.
pub(crate) fn check_resolved(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, WebhookError> {
    if addrs.is_empty() {
        return Err(WebhookError::Invalid(format!(
            "`{host}` resolves to no address"
        )));
    }
    if !allow_private
        && let Some((addr, why)) = addrs
            .iter()
            .find_map(|a| forbidden_reason(a.ip()).map(|why| (a, why)))
    {
        let named = if host.parse::<IpAddr>().is_ok() {
            format!("{} is {why}", addr.ip())
        } else {
            format!("`{host}` resolves to {}, {why}", addr.ip())
        };
        return Err(WebhookError::Forbidden(format!(
            "{named}: webhooks are not sent there unless EVENTS_WEBHOOKS_ALLOW_PRIVATE=true"
        )));
    }
    Ok(addrs)
}

/// Resolves `target` (a literal address resolves to itself) and checks
/// every address.
pub(crate) async fn resolve(
    target: &Target,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, WebhookError> {
    let addrs = match target.literal() {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| WebhookError::Invalid(format!("`{}` does not resolve: {e}", target.host)))?
            .collect(),
    };
    check_resolved(&target.host, addrs, allow_private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forbidden_addresses_say_what_they_are() {
        for (addr, what) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared"),
            ("100.127.255.254", "shared"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::a00:1", "NAT64"),
        ] {
            let why = forbidden_reason(ip(addr)).unwrap_or_else(|| panic!("{addr} allowed"));
            assert!(why.contains(what), "{addr}: {why}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2606:2800:220:1::1",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
        ] {
            assert_eq!(forbidden_reason(ip(addr)), None, "{addr}");
        }
    }

    fn at(addr: &str) -> SocketAddr {
        SocketAddr::new(ip(addr), 443)
    }

    #[test]
    fn every_resolved_address_is_checked() {
        // A name whose resolutions mix a public and a private address is
        // refused, whichever comes first.
        for addrs in [
            vec![at("93.184.216.34"), at("10.0.0.5")],
            vec![at("10.0.0.5"), at("93.184.216.34")],
            vec![at("2606:2800:220:1::1"), at("::ffff:192.168.0.1")],
        ] {
            let error = check_resolved("hooks.example", addrs, false).unwrap_err();
            assert!(matches!(error, WebhookError::Forbidden(_)), "{error}");
            assert!(
                error.to_string().contains("`hooks.example` resolves to"),
                "{error}"
            );
        }
        let fine = vec![at("93.184.216.34"), at("2606:2800:220:1::1")];
        assert_eq!(
            check_resolved("hooks.example", fine.clone(), false).unwrap(),
            fine
        );
        // Allowed, private addresses pass.
        let private = vec![at("127.0.0.1")];
        assert_eq!(
            check_resolved("localhost", private.clone(), true).unwrap(),
            private
        );
        // No address at all is an error in words.
        assert!(
            check_resolved("nowhere.example", vec![], true)
                .unwrap_err()
                .to_string()
                .contains("no address")
        );
    }

    #[test]
    fn urls_need_a_scheme_a_host_and_https_when_required() {
        let t = parse_url("https://Hooks.Example.com/in?x=1", true).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("hooks.example.com", 443, true)
        );
        let t = parse_url("http://[::1]:8080/in", false).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8080, false));
        assert_eq!(t.literal(), Some(ip("::1")));
        for (url, says) in [
            ("http://hooks.example.com/", "is not https"),
            ("ftp://hooks.example.com/", "scheme `ftp`"),
            ("hooks.example.com/in", "no scheme"),
            (
                "https://user:pw@hooks.example.com/",
                "user name or password",
            ),
            ("https://", "not a URL"),
            ("not a url", "no scheme"),
            ("https://exa mple.com/", "not a URL"),
        ] {
            let error = parse_url(url, true).unwrap_err();
            assert!(matches!(error, WebhookError::Invalid(_)), "{url}: {error}");
            assert!(error.to_string().contains(says), "{url}: {error}");
        }
    }
}
