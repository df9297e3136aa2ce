//! The request head as an upstream will read it, checked before routing, beside [`crate::target`]:
//! framing two parsers could read differently (`Transfer-Encoding` with `Content-Length`, a
//! repeated `Content-Length`, a transfer coding other than a lone `chunked`), headers that make
//! some upstreams act on another method or protocol than the one decided (method overrides,
//! `Upgrade`, a `Connection` header nominating end-to-end headers), and a header block above the
//! configured limits (431). Also names the hop-by-hop headers the proxy strips before
//! forwarding ([`is_hop_by_hop`]). Pure: no I/O, never panics.
//!
//! Refusing beats rewriting here as in `target`: what is decided is what is forwarded.

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

/// Checks a request head: `method`, its `headers`, and the `query` (for `_method`).
pub fn check(
    method: &http::Method,
    headers: &HeaderMap,
    query: Option<&str>,
    limits: HeadLimits,
) -> Result<(), HeadError> {
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
    if let Some(value) = headers.get(http::header::UPGRADE) {
        return Err(HeadError::Upgrade {
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        });
    }
    for value in headers.get_all(CONNECTION) {
        for option in value.as_bytes().split(|b| *b == b',') {
            let option = String::from_utf8_lossy(option).trim().to_ascii_lowercase();
            if !option.is_empty() && !CONNECTION_OPTIONS.contains(&option.as_str()) {
                return Err(HeadError::ConnectionNominates { name: option });
            }
        }
    }
    Ok(())
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
