//! The request target as Lexecon and every upstream will read it, checked before routing: a target
//! that could mean one thing to Lexecon's routes and classifiers and another to the upstream (which
//! may resolve dot segments, decode `%2F`, or treat `\` as `/`) is refused, so what is routed,
//! classified and decided is what is forwarded. Follows Envoy's choices (`normalize_path`,
//! `merge_slashes`, `path_with_escaped_slashes_action: REJECT_REQUEST`), rejecting instead of
//! rewriting: a rewrite would forward bytes the client did not send.
//!
//! Refused (400): dot segments (`.` or `..`, raw or percent-encoded, in any case), an encoded `/` or
//! `\`, a raw `\`, control characters (raw or percent-encoded, `%00` included), invalid
//! percent-encoding, empty segments (`//`), a path that does not start with `/` (other than `*`
//! for `OPTIONS`), and an absolute-form target whose authority disagrees with `Host`. Pure: no I/O,
//! never panics.

/// Why a request target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("request target {target:?} has a dot segment ({segment:?}); send the resolved path")]
    DotSegment { target: String, segment: String },
    #[error("request target {target:?} encodes a path separator ({escape}); send it unencoded or not at all")]
    EncodedSeparator { target: String, escape: String },
    #[error("request target {target:?} contains a backslash")]
    Backslash { target: String },
    #[error("request target {target:?} contains a control character")]
    ControlCharacter { target: String },
    #[error("request target {target:?} has invalid percent-encoding at byte {at}")]
    InvalidEscape { target: String, at: usize },
    #[error(
        "request target {target:?} has an empty segment (`//`); send the path with single slashes"
    )]
    EmptySegment { target: String },
    #[error("request target {target:?} is not an absolute path")]
    NotAbsolute { target: String },
    #[error("absolute-form request target names {authority:?} but the Host header is {host:?}")]
    AuthorityMismatch { authority: String, host: String },
}

/// Checks a request's path (without its query) and, for an absolute-form target with a `Host`
/// header, that the two name the same authority.
pub fn check(
    method: &http::Method,
    uri: &http::Uri,
    host: Option<&str>,
) -> Result<(), TargetError> {
    // HTTP/2 carries the authority in `:authority` and may send no `Host`: then there is nothing
    // to disagree with.
    if let (Some(authority), Some(host)) = (uri.authority(), host) {
        if !authority.as_str().eq_ignore_ascii_case(host) {
            return Err(TargetError::AuthorityMismatch {
                authority: authority.as_str().to_owned(),
                host: host.to_owned(),
            });
        }
    }
    let path = uri.path();
    if path == "*" && method == http::Method::OPTIONS {
        return Ok(());
    }
    check_path(path)
}

/// The path rules of [`check`] (see the module documentation).
pub fn check_path(path: &str) -> Result<(), TargetError> {
    let target = || path.to_owned();
    if !path.starts_with('/') {
        return Err(TargetError::NotAbsolute { target: target() });
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(TargetError::InvalidEscape {
                        target: target(),
                        at: i,
                    });
                };
                let decoded = (hi * 16 + lo) as u8;
                if decoded == b'/' || decoded == b'\\' {
                    return Err(TargetError::EncodedSeparator {
                        target: target(),
                        escape: path[i..i + 3].to_owned(),
                    });
                }
                if decoded < 0x20 || decoded == 0x7f {
                    return Err(TargetError::ControlCharacter { target: target() });
                }
                i += 3;
            }
            b'\\' => return Err(TargetError::Backslash { target: target() }),
            b if b < 0x20 || b == 0x7f => {
                return Err(TargetError::ControlCharacter { target: target() })
            }
            _ => i += 1,
        }
    }
    // Segments after the leading `/`; the last may be empty (`/a/`), no other may.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, segment) in segments.iter().enumerate() {
        if segment.is_empty() && n != last {
            return Err(TargetError::EmptySegment { target: target() });
        }
        if is_dot_segment(segment) {
            return Err(TargetError::DotSegment {
                target: target(),
                segment: (*segment).to_owned(),
            });
        }
    }
    Ok(())
}

/// `.` or `..`, each dot raw or as `%2e`/`%2E`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if rest
            .as_bytes()
            .get(..3)
            .is_some_and(|b| b.eq_ignore_ascii_case(b"%2e"))
        {
            // INVARIANT: the three bytes are ASCII, so byte 3 is a char boundary.
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str) -> bool {
        check_path(path).is_err()
    }

    #[test]
    fn ordinary_paths_pass() {
        for ok in [
            "/",
            "/mcp",
            "/v1/orders/42",
            "/v1/orders/",
            "/fhir/Patient/123/$everything",
            "/files/a.b",
            "/files/...",
            "/files/.hidden",
            "/files/name%20with%20space",
            "/files/%41",
            "/a/..b/c..",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}: {:?}", check_path(ok));
        }
    }

    #[test]
    fn dot_segments_are_refused_raw_or_encoded() {
        for bad in [
            "/mcp/../v1/orders",
            "/v1/orders/.",
            "/v1/orders/./42",
            "/..",
            "/fhir/Patient/%2e%2e/Observation",
            "/mcp/%2E%2e/v1/orders",
            "/a/.%2e/b",
            "/a/%2e",
        ] {
            assert!(
                matches!(check_path(bad), Err(TargetError::DotSegment { .. })),
                "{bad}: {:?}",
                check_path(bad)
            );
        }
    }

    #[test]
    fn encoded_separators_backslashes_and_controls_are_refused() {
        assert!(matches!(
            check_path("/mcp%2F..%2Fv1/orders"),
            Err(TargetError::EncodedSeparator { .. })
        ));
        assert!(matches!(
            check_path("/a%5cb"),
            Err(TargetError::EncodedSeparator { .. })
        ));
        assert!(matches!(
            check_path("/a\\..\\b"),
            Err(TargetError::Backslash { .. })
        ));
        assert!(matches!(
            check_path("/a%00b"),
            Err(TargetError::ControlCharacter { .. })
        ));
        assert!(matches!(
            check_path("/a%0ab"),
            Err(TargetError::ControlCharacter { .. })
        ));
        assert!(matches!(
            check_path("/a\tb"),
            Err(TargetError::ControlCharacter { .. })
        ));
        assert!(matches!(
            check_path("/a%zzb"),
            Err(TargetError::InvalidEscape { at: 2, .. })
        ));
        assert!(matches!(
            check_path("/a%2"),
            Err(TargetError::InvalidEscape { .. })
        ));
        assert!(matches!(
            check_path("/v1//orders"),
            Err(TargetError::EmptySegment { .. })
        ));
        assert!(matches!(
            check_path("//v1/orders"),
            Err(TargetError::EmptySegment { .. })
        ));
        assert!(refused("v1/orders"));
        assert!(refused(""));
    }

    #[test]
    fn absolute_form_must_name_the_host() {
        let get = http::Method::GET;
        let uri: http::Uri = "http://ehr.internal/fhir/Patient/1".parse().unwrap();
        assert!(check(&get, &uri, Some("ehr.internal")).is_ok());
        assert!(check(&get, &uri, Some("EHR.internal")).is_ok());
        assert!(matches!(
            check(&get, &uri, Some("public.example")),
            Err(TargetError::AuthorityMismatch { .. })
        ));
        assert!(
            check(&get, &uri, None).is_ok(),
            "HTTP/2: :authority and no Host"
        );
        let star: http::Uri = "*".parse().unwrap();
        assert!(check(&http::Method::OPTIONS, &star, Some("h")).is_ok());
        assert!(check(&get, &star, Some("h")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(path in "\\PC{0,40}") {
            let _ = check_path(&path);
        }

        #[test]
        fn a_passing_path_has_no_dot_segment_after_decoding(path in "/[a-z.%2eE/]{0,24}") {
            if check_path(&path).is_ok() {
                let decoded = percent_encoding::percent_decode_str(&path).decode_utf8_lossy();
                for segment in decoded.split('/') {
                    proptest::prop_assert!(segment != "." && segment != "..", "{path} -> {decoded}");
                }
            }
        }
    }
}
