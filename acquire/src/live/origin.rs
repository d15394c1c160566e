//! Who may read the live view: the page is for the person at the recorder
//! (or a laptop on the bench), not for every web page their browser has
//! open. Browsers let any site open a WebSocket to `127.0.0.1` (no
//! same-origin rule applies to WebSockets), so without a check a page from
//! anywhere could read the stream (cross-site WebSocket hijacking); and a
//! site whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) would even
//! be same-origin with us. Two rules close both:
//!
//! * the `Host` a request names must be `localhost` or an IP literal with
//!   our port (a rebound DNS name never is);
//! * a WebSocket upgrade that carries an `Origin` (every browser sends one)
//!   must come from the page itself, `http://` + that `Host`. Tools that are
//!   not browsers (websocat, scripts) send none and are let through: they
//!   are not a web page the user happens to have open.
//!
//! And one more gates everything, the page and the stream alike: a
//! [`Token`] of 128 random bits in the URL acquire prints (`?token=…`). A
//! port is easy to guess or scan for; the token is not, so another user of
//! the machine, or a page that guessed the port and somehow passed the
//! first two rules, still reads nothing.

use std::net::IpAddr;

/// The secret in the printed URL: 128 bits from the kernel's random pool.
pub struct Token(String);

impl Token {
    /// A fresh token (from `/dev/urandom`, which never blocks once the
    /// pool is initialised, long before anyone records).
    pub fn new() -> std::io::Result<Token> {
        use std::io::Read;
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Token(b.iter().map(|x| format!("{x:02x}")).collect()))
    }

    /// The URL query that carries it.
    pub fn query(&self) -> String {
        format!("?token={}", self.0)
    }

    /// Whether a request target (`/ws?token=…`) carries this token; compared
    /// in constant time so response timing tells nothing about a prefix.
    pub fn admits(&self, target: &str) -> Result<(), Refused> {
        let given = target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        let (a, b) = (given.as_bytes(), self.0.as_bytes());
        let diff = a.len() ^ b.len()
            | a.iter()
                .zip(b)
                .fold(0usize, |d, (x, y)| d | usize::from(x ^ y));
        if diff == 0 {
            Ok(())
        } else {
            Err(Refused::Token)
        }
    }
}

/// Why a request was refused (answered 403 with this text).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No `Host` header (HTTP/1.1 requires one).
    NoHost,
    /// A `Host` that is a DNS name other than `localhost` (DNS rebinding).
    HostName(String),
    /// A `Host` with another port than ours.
    HostPort(String),
    /// A WebSocket upgrade from a page of another origin.
    Origin(String),
    /// No token, or not the one in the printed URL.
    Token,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoHost => write!(f, "refused: no Host header"),
            Refused::HostName(h) => {
                write!(f, "refused: Host {h:?} is not localhost or an IP address")
            }
            Refused::HostPort(h) => write!(f, "refused: Host {h:?} names another port"),
            Refused::Origin(o) => write!(f, "refused: a request from another origin ({o})"),
            Refused::Token => write!(
                f,
                "refused: missing or wrong token (open the URL acquire printed, token included)"
            ),
        }
    }
}

/// Checks one request's `Host` and `Origin` against the port we listen on.
pub fn check(host: Option<&str>, origin: Option<&str>, port: u16) -> Result<(), Refused> {
    let host = host.ok_or(Refused::NoHost)?;
    let (name, p) = split_host(host).ok_or_else(|| Refused::HostName(host.into()))?;
    if p != port {
        return Err(Refused::HostPort(host.into()));
    }
    let literal = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok();
    if !literal && !name.eq_ignore_ascii_case("localhost") {
        return Err(Refused::HostName(host.into()));
    }
    // Any request that says where it comes from must come from the page
    // itself: the WebSocket always says (browsers send Origin), and so
    // does another site's script fetching the page. A typed URL or a tool
    // sends none; the token still gates those.
    match origin {
        Some(o) if !o.eq_ignore_ascii_case(&format!("http://{host}")) => {
            Err(Refused::Origin(o.into()))
        }
        _ => Ok(()),
    }
}

/// `name:port` (an IPv6 literal in brackets); the port is required, as the
/// live view never runs on port 80.
fn split_host(host: &str) -> Option<(&str, u16)> {
    let (name, port) = host.rsplit_once(':')?;
    if name.is_empty() || (name.contains(':') && !name.starts_with('[')) {
        return None;
    }
    Some((name, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_printed_token_is_admitted() {
        let t = Token::new().unwrap();
        assert_eq!(t.query().len(), "?token=".len() + 32);
        assert_eq!(t.admits(&format!("/ws{}", t.query())), Ok(()));
        assert_eq!(t.admits(&format!("/{}&x=1", t.query())), Ok(()));
        assert_eq!(t.admits("/ws"), Err(Refused::Token));
        assert_eq!(t.admits("/ws?token="), Err(Refused::Token));
        let q = t.query();
        let prefix = &q[..q.len() - 1];
        assert_eq!(t.admits(&format!("/ws{prefix}")), Err(Refused::Token));
        assert_eq!(t.admits(&format!("/ws{q}0")), Err(Refused::Token));
        assert_ne!(Token::new().unwrap().0, t.0, "two tokens differ");
    }

    #[test]
    fn the_page_itself_is_allowed() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "192.168.1.20:8080",
        ] {
            let origin = format!("http://{host}");
            assert_eq!(check(Some(host), Some(&origin), 8080), Ok(()), "{host}");
            assert_eq!(check(Some(host), None, 8080), Ok(()), "{host}");
        }
    }

    #[test]
    fn another_site_cannot_fetch_the_page() {
        let r = check(Some("127.0.0.1:8080"), Some("https://evil.example"), 8080);
        assert_eq!(r, Err(Refused::Origin("https://evil.example".into())));
    }

    #[test]
    fn a_tool_without_origin_is_allowed() {
        assert_eq!(check(Some("127.0.0.1:9"), None, 9), Ok(()));
    }

    #[test]
    fn another_site_cannot_open_the_websocket() {
        let r = check(Some("127.0.0.1:8080"), Some("https://evil.example"), 8080);
        assert_eq!(r, Err(Refused::Origin("https://evil.example".into())));
        // The same origin on another port is another origin.
        let r = check(Some("127.0.0.1:8080"), Some("http://127.0.0.1:3000"), 8080);
        assert!(matches!(r, Err(Refused::Origin(_))));
        assert!(matches!(
            check(Some("127.0.0.1:8080"), Some("null"), 8080),
            Err(Refused::Origin(_))
        ));
    }

    #[test]
    fn a_rebound_dns_name_is_refused() {
        // evil.example resolved to 127.0.0.1: same-origin with itself, but not us.
        let r = check(
            Some("evil.example:8080"),
            Some("http://evil.example:8080"),
            8080,
        );
        assert_eq!(r, Err(Refused::HostName("evil.example:8080".into())));
        assert!(matches!(
            check(Some("evil.example:8080"), None, 8080),
            Err(Refused::HostName(_))
        ));
    }

    #[test]
    fn malformed_or_missing_hosts_are_refused() {
        assert_eq!(check(None, None, 80), Err(Refused::NoHost));
        assert!(matches!(
            check(Some("127.0.0.1"), None, 80),
            Err(Refused::HostName(_))
        ));
        assert!(matches!(
            check(Some("::1:80"), None, 80),
            Err(Refused::HostName(_))
        ));
        assert!(matches!(
            check(Some("127.0.0.1:81"), None, 80),
            Err(Refused::HostPort(_))
        ));
        assert!(matches!(
            check(Some("127.0.0.1:x"), None, 80),
            Err(Refused::HostName(_))
        ));
    }
}
