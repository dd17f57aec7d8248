//! Who may see the board: [`Auth`], and the checks every request passes before anything is
//! read (the token, compared in constant time) and before anything is changed (the request
//! comes from the board's own origin).

use std::fmt;
use std::rc::Rc;

use worker::Request;

/// Who may use the board. Every route answers 401 to a request it refuses, before reading
/// anything.
///
/// ```
/// use lumenize_board::Auth;
/// // `Authorization: Bearer <token>`, or a browser's Basic login with the token as password.
/// let auth = Auth::bearer("a long random secret from the worker's env");
/// // Or a check of your own (a session cookie, Cloudflare Access' headers, ...).
/// let auth = Auth::with(|req| req.headers().get("cf-access-authenticated-user-email").ok().flatten().is_some());
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct Auth(Check);

#[derive(Clone)]
enum Check {
    Token(Rc<str>),
    Custom(Rc<dyn Fn(&Request) -> bool>),
}

impl Auth {
    /// Lets in requests that carry `token`: as `Authorization: Bearer <token>` (scripts,
    /// `curl`), or as the password of HTTP Basic authentication (a browser asks for it; the
    /// user name is ignored). Compared in constant time. An empty token lets nobody in, so a
    /// secret missing from the environment closes the board instead of opening it.
    #[must_use]
    pub fn bearer(token: impl Into<String>) -> Self {
        Auth(Check::Token(token.into().into()))
    }

    /// Lets in the requests `check` accepts.
    #[must_use]
    pub fn with(check: impl Fn(&Request) -> bool + 'static) -> Self {
        Auth(Check::Custom(Rc::new(check)))
    }

    /// Whether `req` may use the board.
    pub(crate) fn allows(&self, req: &Request) -> bool {
        match &self.0 {
            Check::Token(token) => token_matches(token, req.headers().get("authorization").ok().flatten().as_deref()),
            Check::Custom(check) => check(req),
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Check::Token(_) => "Auth::bearer(..)",
            Check::Custom(_) => "Auth::with(..)",
        })
    }
}

/// Whether the `Authorization` header carries `token`, as a bearer token or as the password
/// of Basic authentication. Never for an empty token.
pub(crate) fn token_matches(token: &str, authorization: Option<&str>) -> bool {
    let Some(header) = authorization else { return false };
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let given = if scheme.eq_ignore_ascii_case("bearer") {
        value.trim().as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        match base64_decode(value.trim()) {
            // user:password; the password is everything after the first colon.
            Some(pair) => match pair.iter().position(|&b| b == b':') {
                Some(colon) => pair[colon + 1..].to_vec(),
                None => return false,
            },
            None => return false,
        }
    } else {
        return false;
    };
    !token.is_empty() & constant_time_eq(token.as_bytes(), &given)
}

/// Whether `a == b`, in a time that depends on their lengths only, not on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Standard base64 with padding (what browsers send for Basic authentication).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Whether a state-changing request comes from the board's own origin, so a page of
/// another site cannot make a logged-in browser press its buttons. A browser says where a
/// request comes from: `Sec-Fetch-Site` (any current browser) must be `same-origin`;
/// without it, `Origin`, when present, must name the host the request was sent to
/// (`host`: its `Host` header, or the host of its URL). A request with neither header does
/// not come from a browser (a script with the token), and is let through.
pub(crate) fn same_origin(sec_fetch_site: Option<&str>, origin: Option<&str>, host: &str) -> bool {
    if let Some(site) = sec_fetch_site {
        return site.eq_ignore_ascii_case("same-origin");
    }
    match origin {
        None => true,
        Some(origin) => url::Url::parse(origin).ok().and_then(|u| Some(format!("{}{}", u.host_str()?, u.port().map(|p| format!(":{p}")).unwrap_or_default()))).is_some_and(|o| o.eq_ignore_ascii_case(host)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_as_bearer_or_basic_password_only_when_equal() {
        assert!(token_matches("s3cret", Some("Bearer s3cret")));
        assert!(token_matches("s3cret", Some("bearer  s3cret ")));
        // "anyone:s3cret" and ":s3cret"
        assert!(token_matches("s3cret", Some("Basic YW55b25lOnMzY3JldA==")));
        assert!(token_matches("s3cret", Some("Basic OnMzY3JldA==")));
        for wrong in [None, Some(""), Some("Bearer"), Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Bearer S3CRET"), Some("s3cret"), Some("Token s3cret"), Some("Basic s3cret"), Some("Basic czNjcmV0")] {
            assert!(!token_matches("s3cret", wrong), "{wrong:?}");
        }
    }

    #[test]
    fn an_empty_token_lets_nobody_in() {
        assert!(!token_matches("", Some("Bearer ")));
        assert!(!token_matches("", Some("Bearer")));
        assert!(!token_matches("", Some("Basic Og==")), "user and password empty");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab\0", b"ab"), "a shorter input is not padded into a match");
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_origin(Some("same-origin"), Some("http://127.0.0.1:8787"), "127.0.0.1:8787"));
        assert!(!same_origin(Some("cross-site"), None, "127.0.0.1:8787"));
        assert!(!same_origin(Some("same-site"), None, "a.example.com"));
        assert!(!same_origin(Some("none"), None, "a.example.com"), "typed in the address bar: not a button of the page");
        assert!(same_origin(None, Some("https://a.example.com"), "a.example.com"));
        assert!(!same_origin(None, Some("https://evil.example"), "a.example.com"));
        assert!(!same_origin(None, Some("http://127.0.0.1:9999"), "127.0.0.1:8787"));
        assert!(!same_origin(None, Some("null"), "a.example.com"));
        assert!(same_origin(None, None, "a.example.com"), "a script with the token");
    }
}
