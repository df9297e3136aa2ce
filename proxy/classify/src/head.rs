//! The request head as an upstream will read it, checked before routing, beside [`crate::target`]:
//! framing two parsers could read differently (`Transfer-Encoding` with `Content-Length`, a
//! repeated `Content-Length`, a transfer coding other than a lone `chunked`), headers that make
//! some upstreams act on another method or protocol than the one decided (method overrides,
//! `Upgrade`, a `Connection` header nominating end-to-end headers), and a header block above the
//! configured limits (431). Also names the hop-by-hop headers the proxy strips before
//! forwarding ([`is_hop_by_hop`]). Pure: no I/O, never panics.
//!
//! Refusing beats rewriting here as in `target`: what is decided is what is forwarded.
//!
//! One upgrade may pass [`inspect`]: a well-formed WebSocket handshake (RFC 6455 §4.1: `GET`,
//! HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, one 16-byte `Sec-WebSocket-Key`,
//! `Sec-WebSocket-Version: 13`, no body), which the proxy then allows only on a route that takes
//! it; `h2c` and every other protocol are refused here, on every route.

use http::header::{HeaderMap, HeaderName, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};

/// Method-override headers: frameworks (Rails, Laravel, Express `method-override`, ASP.NET,
/// Spring's `HiddenHttpMethodFilter` for `_method`) route a `POST` carrying one as the method it
/// names, so a `POST` decided as a create could be run as a `DELETE`.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The `Connection` options that name no end-to-end header.
const CONNECTION_OPTIONS: [&str; 3] = ["close", "keep-alive", "te"];

/// The header limits of `limits:`.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The largest header block: every `name: value\r\n`.
    pub bytes: usize,
    /// The most header fields.
    pub count: usize,
}

/// Why a request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request has {count} header fields, above the limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("the request's header block is {bytes} bytes, above the limit of {limit}")]
    HeadersTooLarge { bytes: usize, limit: usize },
    #[error("the request has both Transfer-Encoding and Content-Length; send one")]
    ConflictingFraming,
    #[error("the request has {count} Content-Length headers; send one")]
    RepeatedContentLength { count: usize },
    #[error("Content-Length {value:?} is not a decimal length")]
    InvalidContentLength { value: String },
    #[error("Transfer-Encoding {value:?} is refused; only a single `chunked` is accepted")]
    TransferCoding { value: String },
    #[error(
        "header {name} would make some upstreams run another method than {method}; it is refused"
    )]
    MethodOverride { name: String, method: String },
    #[error("query parameter `_method` would make some upstreams run another method than {method}; it is refused")]
    MethodOverrideParam { method: String },
    #[error("protocol upgrade ({value:?}) is not allowed through Lexecon")]
    Upgrade { value: String },
    #[error("Connection nominates {name:?}; only close, keep-alive and te may be named")]
    ConnectionNominates { name: String },
    #[error("malformed WebSocket handshake: {reason}")]
    WebSocket { reason: &'static str },
}

/// What [`inspect`] found in a head it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// The protocol the client asks to upgrade to: only a well-formed WebSocket handshake.
    pub upgrade: Option<Upgrade>,
}

/// A protocol upgrade [`inspect`] lets through to routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    WebSocket,
}

impl Upgrade {
    /// The name in `Upgrade`, in `routes[].upgrade` and in `context.upgrade`.
    pub fn name(self) -> &'static str {
        match self {
            Upgrade::WebSocket => "websocket",
        }
    }
}

impl HeadError {
    /// 431 for a header block over the limits, 400 for the rest.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooManyHeaders { .. } | HeadError::HeadersTooLarge { .. } => 431,
            _ => 400,
        }
    }
}

/// Checks a request head: `method`, its `headers`, and the `query` (for `_method`). Refuses every
/// upgrade; [`inspect`] lets a WebSocket handshake through.
pub fn check(
    method: &http::Method,
    headers: &HeaderMap,
    query: Option<&str>,
    limits: HeadLimits,
) -> Result<(), HeadError> {
    match inspect(method, http::Version::HTTP_11, headers, query, limits)?.upgrade {
        Some(upgrade) => Err(HeadError::Upgrade {
            value: upgrade.name().to_owned(),
        }),
        None => Ok(()),
    }
}

/// [`check`], except that a well-formed WebSocket handshake on HTTP/1.1 passes, as
/// `Head { upgrade: Some(Upgrade::WebSocket) }`: the caller must refuse it unless the route takes
/// it. Any other `Upgrade` (`h2c`, a list, a second header) is refused, and so is a WebSocket
/// handshake that is not well-formed.
pub fn inspect(
    method: &http::Method,
    version: http::Version,
    headers: &HeaderMap,
    query: Option<&str>,
    limits: HeadLimits,
) -> Result<Head, HeadError> {
    if headers.len() > limits.count {
        return Err(HeadError::TooManyHeaders {
            count: headers.len(),
            limit: limits.count,
        });
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes > limits.bytes {
        return Err(HeadError::HeadersTooLarge {
            bytes,
            limit: limits.bytes,
        });
    }
    check_framing(headers)?;
    for name in METHOD_OVERRIDES {
        if headers.contains_key(name) {
            return Err(HeadError::MethodOverride {
                name: name.to_owned(),
                method: method.to_string(),
            });
        }
    }
    if query.is_some_and(has_method_param) {
        return Err(HeadError::MethodOverrideParam {
            method: method.to_string(),
        });
    }
    let upgrade = match headers.get(http::header::UPGRADE) {
        Some(value) => Some(websocket(method, version, headers, value)?),
        None => None,
    };
    let mut names_upgrade = false;
    for value in headers.get_all(CONNECTION) {
        for option in value.as_bytes().split(|b| *b == b',') {
            let option = String::from_utf8_lossy(option).trim().to_ascii_lowercase();
            if option == "upgrade" && upgrade.is_some() {
                names_upgrade = true;
            } else if !option.is_empty() && !CONNECTION_OPTIONS.contains(&option.as_str()) {
                return Err(HeadError::ConnectionNominates { name: option });
            }
        }
    }
    if upgrade.is_some() && !names_upgrade {
        return Err(HeadError::WebSocket {
            reason: "Connection must name upgrade",
        });
    }
    Ok(Head { upgrade })
}

/// A WebSocket handshake as RFC 6455 §4.1 has it, or the reason it is refused. `value` is the
/// (first) `Upgrade` header.
fn websocket(
    method: &http::Method,
    version: http::Version,
    headers: &HeaderMap,
    value: &http::HeaderValue,
) -> Result<Upgrade, HeadError> {
    let refused = || HeadError::Upgrade {
        value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
    };
    // One `Upgrade: websocket`, nothing else: `h2c`, `websocket, h2c`, a second header.
    if headers.get_all(http::header::UPGRADE).iter().count() != 1
        || !value.as_bytes().eq_ignore_ascii_case(b"websocket")
        || headers.contains_key("http2-settings")
    {
        return Err(refused());
    }
    let malformed = |reason| Err(HeadError::WebSocket { reason });
    if method != http::Method::GET {
        return malformed("the handshake must be a GET");
    }
    if version != http::Version::HTTP_11 {
        return malformed("the handshake must be HTTP/1.1");
    }
    if headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
    {
        return malformed("the handshake must have no body");
    }
    let mut keys = headers.get_all("sec-websocket-key").iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_websocket_key(key.as_bytes()) => {}
        _ => return malformed("it needs one Sec-WebSocket-Key, 16 bytes in base64"),
    }
    let mut versions = headers.get_all("sec-websocket-version").iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes() == b"13" => {}
        _ => return malformed("it needs one Sec-WebSocket-Version: 13"),
    }
    Ok(Upgrade::WebSocket)
}

/// 16 bytes in base64: 22 characters of the alphabet and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn check_framing(headers: &HeaderMap) -> Result<(), HeadError> {
    let lengths = headers.get_all(CONTENT_LENGTH).iter().count();
    let codings = headers.get_all(TRANSFER_ENCODING).iter().count();
    if lengths > 0 && codings > 0 {
        return Err(HeadError::ConflictingFraming);
    }
    if lengths > 1 {
        return Err(HeadError::RepeatedContentLength { count: lengths });
    }
    if let Some(value) = headers.get(CONTENT_LENGTH) {
        let digits = value.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::InvalidContentLength {
                value: String::from_utf8_lossy(digits).into_owned(),
            });
        }
    }
    if codings > 1 {
        let joined: Vec<_> = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        return Err(HeadError::TransferCoding {
            value: joined.join(", "),
        });
    }
    if let Some(value) = headers.get(TRANSFER_ENCODING) {
        if !value
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked")
        {
            return Err(HeadError::TransferCoding {
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            });
        }
    }
    Ok(())
}

/// Whether a query has a `_method` parameter (the name compared after percent-decoding).
fn has_method_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .eq_ignore_ascii_case("_method")
    })
}

/// Whether a header is hop-by-hop: meant for the next connection only, never forwarded
/// (RFC 9110 §7.6.1 plus the `Proxy-*` family and HTTP/2's upgrade settings).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "connection" | "keep-alive" | "upgrade" | "http2-settings" | "te"
    ) || name.starts_with("proxy-")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        bytes: 1024,
        count: 10,
    };

    fn head(lines: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    fn verdict(lines: &[(&str, &str)], query: Option<&str>) -> Result<(), HeadError> {
        check(&http::Method::POST, &head(lines), query, LIMITS)
    }

    #[test]
    fn an_ordinary_head_passes() {
        let ordinary = [
            ("host", "api.test"),
            ("content-type", "application/json"),
            ("content-length", "42"),
            ("connection", "keep-alive"),
        ];
        assert_eq!(verdict(&ordinary, Some("a=1&method=x")), Ok(()));
        assert_eq!(verdict(&[("transfer-encoding", "Chunked")], None), Ok(()));
        assert_eq!(
            verdict(&[("connection", "close, TE"), ("te", "trailers")], None),
            Ok(())
        );
    }

    #[test]
    fn framing_two_parsers_could_read_differently_is_refused() {
        let cases: [&[(&str, &str)]; 7] = [
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "5"), ("content-length", "6")],
            &[("content-length", "+5")],
            &[("transfer-encoding", "gzip, chunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "xchunked")],
        ];
        for case in cases {
            let e = verdict(case, None).unwrap_err();
            assert_eq!(e.status(), 400, "{case:?}: {e}");
        }
    }

    #[test]
    fn method_overrides_and_upgrades_are_refused() {
        for name in [
            "x-http-method-override",
            "X-HTTP-Method",
            "x-method-override",
        ] {
            let e = verdict(&[(name, "DELETE")], None).unwrap_err();
            assert!(matches!(e, HeadError::MethodOverride { .. }), "{name}: {e}");
        }
        for query in [
            "_method=DELETE",
            "a=1&_METHOD=delete",
            "%5Fmethod=DELETE",
            "_method",
        ] {
            let e = verdict(&[], Some(query)).unwrap_err();
            assert_eq!(
                e,
                HeadError::MethodOverrideParam {
                    method: "POST".into()
                }
            );
        }
        let e = verdict(&[("upgrade", "h2c"), ("connection", "upgrade")], None).unwrap_err();
        assert!(matches!(e, HeadError::Upgrade { .. }), "{e}");
        let e = verdict(&[("connection", "close, x-lexecon-capability")], None).unwrap_err();
        assert_eq!(
            e,
            HeadError::ConnectionNominates {
                name: "x-lexecon-capability".into()
            }
        );
    }

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    const V13: (&str, &str) = ("sec-websocket-version", "13");

    fn ws(
        lines: &[(&str, &str)],
        method: http::Method,
        version: http::Version,
    ) -> Result<Head, HeadError> {
        inspect(&method, version, &head(lines), None, LIMITS)
    }

    #[test]
    fn a_well_formed_websocket_handshake_passes_inspect_and_nothing_else_does() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            KEY,
            V13,
        ];
        let get = http::Method::GET;
        let h11 = http::Version::HTTP_11;
        assert_eq!(
            ws(&good, get.clone(), h11).unwrap().upgrade,
            Some(Upgrade::WebSocket)
        );
        let also = [
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, upgrade"),
            KEY,
            V13,
            ("content-length", "0"),
        ];
        assert!(ws(&also, get.clone(), h11).is_ok());
        // `check` refuses it still: only routes that take it see it.
        assert!(matches!(
            check(&get, &head(&good), None, LIMITS),
            Err(HeadError::Upgrade { .. })
        ));
        assert_eq!(
            ws(&[("host", "a")], get.clone(), h11).unwrap(),
            Head::default()
        );
        let refused: [&[(&str, &str)]; 11] = [
            &[
                ("upgrade", "h2c"),
                ("connection", "upgrade, http2-settings"),
                ("http2-settings", "AAMAAABkAAQAAP__"),
            ],
            &[
                ("upgrade", "websocket, h2c"),
                ("connection", "upgrade"),
                KEY,
                V13,
            ],
            &[
                ("upgrade", "websocket"),
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                KEY,
                V13,
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("http2-settings", "x"),
                KEY,
                V13,
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "keep-alive"),
                KEY,
                V13,
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade, x-agent-id"),
                KEY,
                V13,
            ],
            &[("upgrade", "websocket"), ("connection", "upgrade"), V13],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-key", "short=="),
                V13,
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                KEY,
                ("sec-websocket-version", "8"),
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                KEY,
                V13,
                ("content-length", "5"),
            ],
            &[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                KEY,
                V13,
                ("transfer-encoding", "chunked"),
            ],
        ];
        for case in refused {
            assert!(ws(case, get.clone(), h11).is_err(), "{case:?}");
        }
        assert!(ws(&good, http::Method::POST, h11).is_err());
        assert!(ws(&good, get.clone(), http::Version::HTTP_10).is_err());
        // `Connection: upgrade` without an upgrade names a header like any other.
        assert!(ws(&[("connection", "upgrade")], get, h11).is_err());
    }

    #[test]
    fn header_blocks_above_the_limits_get_431() {
        let many: Vec<(String, String)> =
            (0..11).map(|i| (format!("x-h{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(verdict(&many, None).unwrap_err().status(), 431);
        let big = "v".repeat(1100);
        let e = verdict(&[("x-big", big.as_str())], None).unwrap_err();
        assert_eq!(e.status(), 431, "{e}");
    }

    #[test]
    fn hop_by_hop_names() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "upgrade",
            "http2-settings",
        ] {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "authorization",
            "content-length",
            "transfer-encoding",
            "x-agent-id",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }
}
