//! The `target` target: [`lexecon_classify::target::check_path`] on the raw path of any request
//! line, and [`lexecon_classify::target::check`] on it parsed as an `http::Uri` with the request's
//! `Host`. Besides "never panics": whatever they accept must pass [`ambiguity`], a plain check
//! written here from the rules of docs/request-integrity.md and issue 14 — decode every escape,
//! then look — that shares no code with the checker.

use lexecon_classify::target::{check, check_path};

use crate::request;

/// Fuzz target `target`.
pub fn target(data: &[u8]) {
    let request = request::parse(data);
    let path = request.path_and_query().0;
    if check_path(path).is_ok() {
        if let Some(why) = ambiguity(path) {
            panic!("check_path accepted {path:?}, which has {why}");
        }
    }
    let Ok(uri) = http::Uri::try_from(request.target.as_str()) else {
        return;
    };
    let method = http::Method::from_bytes(request.method.as_bytes()).unwrap_or_default();
    let host = request.header("host");
    if check(&method, &uri, host).is_err() {
        return;
    }
    if let (Some(authority), Some(host)) = (uri.authority(), host) {
        assert!(
            authority.as_str().eq_ignore_ascii_case(host),
            "check accepted authority {authority} with Host {host}"
        );
    }
    let path = uri.path();
    if path == "*" {
        assert_eq!(method, http::Method::OPTIONS, "`*` is only OPTIONS' target");
    } else if let Some(why) = ambiguity(path) {
        panic!("check accepted {uri} (path {path:?}), which has {why}");
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `segment` with every `%XX` decoded; `None` when a `%` is not followed by two hex digits.
fn decode(segment: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(segment.len());
    let mut i = 0;
    while i < segment.len() {
        if segment[i] == b'%' {
            let hi = hex_digit(*segment.get(i + 1)?)?;
            let lo = hex_digit(*segment.get(i + 2)?)?;
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(segment[i]);
            i += 1;
        }
    }
    Some(out)
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// What could make an upstream read `path` differently from Lexecon, or `None` for a path that
/// is the same to every reader: absolute, no control character or backslash (raw or encoded), no
/// encoded `/`, only valid escapes, no empty segment but the last, and no segment that is `.` or
/// `..` once decoded.
pub fn ambiguity(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("no leading /");
    };
    if path.bytes().any(is_control) {
        return Some("a control character");
    }
    if path.contains('\\') {
        return Some("a backslash");
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (n, raw) in segments.iter().enumerate() {
        let Some(decoded) = decode(raw.as_bytes()) else {
            return Some("an invalid escape");
        };
        if decoded.contains(&b'/') || decoded.contains(&b'\\') {
            return Some("an encoded separator");
        }
        if decoded.iter().copied().any(is_control) {
            return Some("an encoded control character");
        }
        if decoded == b"." || decoded == b".." {
            return Some("a dot segment");
        }
        if raw.is_empty() && n + 1 != segments.len() {
            return Some("an empty segment");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_check_finds_each_kind_of_ambiguity() {
        for (path, why) in [
            ("v1/orders", "no leading /"),
            ("/a\tb", "a control character"),
            ("/a\\b", "a backslash"),
            ("/a%2", "an invalid escape"),
            ("/a%zz", "an invalid escape"),
            ("/mcp%2F..%2Fv1", "an encoded separator"),
            ("/a%5Cb", "an encoded separator"),
            ("/a%00", "an encoded control character"),
            ("/mcp/%2e%2E/v1/orders", "a dot segment"),
            ("/v1/orders/.", "a dot segment"),
            ("/v1//orders", "an empty segment"),
        ] {
            assert_eq!(ambiguity(path), Some(why), "{path}");
        }
        for path in ["/", "/v1/orders/", "/files/...", "/a/%2e%2e%2e", "/é/%41"] {
            assert_eq!(ambiguity(path), None, "{path}");
        }
    }

    #[test]
    fn ordinary_and_hostile_request_lines_pass_the_target() {
        target(b"POST /mcp/../v1/orders\nhost: a\n\n");
        target(b"GET http://ehr.internal/fhir/Patient/1\nhost: public.example\n\n");
        target(b"OPTIONS *\n\n");
        target(b"GET /v1/orders/42?x=%2e%2e\n\n");
    }
}
