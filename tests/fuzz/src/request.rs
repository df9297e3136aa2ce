//! The input format of the request targets (`classify_*`, `target`): the bytes of an HTTP/1.1
//! request head and body, so that a seed is a readable file and libFuzzer's mutations land on
//! methods, targets, header names and values, and bodies alike.
//!
//! ```text
//! POST /mcp?x=1            <- method, one space, target (path and query); `\r\n` or `\n`
//! content-type: application/json
//! mcp-method: tools/call   <- headers until the first empty line; repeated names are kept
//!
//! {"jsonrpc":"2.0", ...}   <- the body: every byte after the empty line
//! ```
//!
//! Nothing is rejected: text that is not UTF-8 is read lossily, a line without `:` or with a
//! name or value `http` refuses is skipped, input without an empty line has no body. Owns only this
//! parsing; never asserts anything about the request.

/// One request as the classifiers see it.
#[derive(Debug, Clone, Default)]
pub struct FuzzRequest {
    pub method: String,
    /// Path and query as sent (`/v1/orders?x=1`).
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl FuzzRequest {
    /// The path without the query, and the query (`None` when there is no `?`), as the server
    /// passes them to a classifier (`uri.path()`, `uri.query()`).
    pub fn path_and_query(&self) -> (&str, Option<&str>) {
        match self.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.target.as_str(), None),
        }
    }

    /// The first value of header `name` as text, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Splits off one line (without its `\n` and a `\r` before it).
fn next_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let line = &data[..i];
            (
                line.strip_suffix(b"\r").unwrap_or(line),
                Some(&data[i + 1..]),
            )
        }
        None => (data, None),
    }
}

/// Reads `data` as described in the module documentation.
pub fn parse(data: &[u8]) -> FuzzRequest {
    let mut request = FuzzRequest::default();
    let (first, mut rest) = next_line(data);
    let first = String::from_utf8_lossy(first);
    match first.split_once(' ') {
        Some((method, target)) => {
            request.method = method.to_owned();
            request.target = target.to_owned();
        }
        None => request.method = first.into_owned(),
    }
    while let Some(remaining) = rest {
        let (line, after) = next_line(remaining);
        rest = after;
        if line.is_empty() {
            request.body = after.unwrap_or_default().to_vec();
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(value),
        ) {
            request.headers.append(name, value);
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_and_body_are_read_as_sent() {
        let r = parse(b"POST /v1/orders?venue=X\r\nx-venue: XNYS\r\nbad header\r\nx-a: 1\nx-a: 2\n\n{\"a\":1}\n");
        assert_eq!(r.method, "POST");
        assert_eq!(r.path_and_query(), ("/v1/orders", Some("venue=X")));
        assert_eq!(r.header("x-venue"), Some("XNYS"));
        assert_eq!(r.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(r.headers.len(), 3);
        assert_eq!(r.body, b"{\"a\":1}\n");
    }

    #[test]
    fn anything_is_a_request() {
        let r = parse(b"GET");
        assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", ""));
        assert!(r.body.is_empty());
        let r = parse(b"\xff /\xfe\nx\0y: z\n");
        assert_eq!(r.method, "\u{fffd}");
        assert!(r.headers.is_empty());
    }
}
