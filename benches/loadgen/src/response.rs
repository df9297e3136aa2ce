//! Frames one HTTP/1.1 response in a read buffer: status line and headers (httparse), then the body
//! by `Content-Length`, `Transfer-Encoding: chunked`, no body (1xx, 204, 304) or until the server
//! closes. The caller feeds it the bytes read so far and reads more while it answers `Partial`. It
//! never looks at body content.

/// Most headers one response may carry.
const MAX_HEADERS: usize = 64;
/// Longest response head, and longest chunk-size or trailer line, before the response is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk or `Content-Length` accepted (the upstream answers are tiny).
const MAX_BODY: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Bytes of the buffer this response takes, interim (1xx) responses included.
    pub len: usize,
    /// The server will close the connection after it (`Connection: close`, HTTP/1.0, or a body
    /// delimited by the close).
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A whole response.
    Complete(Response),
    /// The head is complete and the body runs until the server closes the connection: read to EOF,
    /// then the response is the whole buffer.
    UntilClose { status: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("bad Content-Length `{0}`")]
    BadContentLength(String),
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("bad chunk size line `{0}`")]
    BadChunkSize(String),
    #[error("chunk data not followed by CRLF")]
    MissingChunkEnd,
    #[error("chunk-size or trailer line longer than {MAX_HEAD} bytes")]
    LineTooLong,
    #[error("status 101 (protocol switch) is not supported")]
    Upgrade,
}

impl From<httparse::Error> for ResponseError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => Self::HeadTooLarge,
            other => Self::Head(other),
        }
    }
}

enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Frames the first response in `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ResponseError> {
    let mut offset = 0;
    loop {
        let rest = buf.get(offset..).unwrap_or_default();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        let head_len = match head.parse(rest)? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial if rest.len() > MAX_HEAD => {
                return Err(ResponseError::HeadTooLarge)
            }
            httparse::Status::Partial => return Ok(Parsed::Partial),
        };
        // httparse sets both on Complete.
        let status = head.code.unwrap_or(0);
        let mut close = head.version == Some(0);
        let mut length: Option<u64> = None;
        let mut transfer_encoding: Option<bool> = None; // Some(chunked is the final coding)
        for h in head.headers.iter() {
            let value = String::from_utf8_lossy(h.value);
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = value.trim();
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_BODY && v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| ResponseError::BadContentLength(v.to_owned()))?;
                if length.is_some_and(|prev| prev != n) {
                    return Err(ResponseError::ConflictingContentLength);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                transfer_encoding = Some(last.eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && head.version == Some(0) {
                        close = false;
                    }
                }
            }
        }
        let body_start = offset + head_len;
        if status == 101 {
            return Err(ResponseError::Upgrade);
        }
        if (100..200).contains(&status) {
            // Interim response (100 Continue, 103 Early Hints): the real one follows.
            offset = body_start;
            continue;
        }
        // RFC 9112 §6.3: no body for 204 and 304; Transfer-Encoding overrides Content-Length.
        let body = if status == 204 || status == 304 {
            Body::None
        } else {
            match (transfer_encoding, length) {
                (Some(true), _) => Body::Chunked,
                (Some(false), _) | (None, None) => Body::UntilClose,
                (None, Some(n)) => Body::Length(n),
            }
        };
        let body_len = match body {
            Body::None => 0,
            Body::Length(n) => n as usize,
            Body::Chunked => match chunked_len(buf.get(body_start..).unwrap_or_default())? {
                Some(n) => n,
                None => return Ok(Parsed::Partial),
            },
            Body::UntilClose => return Ok(Parsed::UntilClose { status }),
        };
        let len = body_start + body_len;
        return Ok(if buf.len() >= len {
            Parsed::Complete(Response { status, len, close })
        } else {
            Parsed::Partial
        });
    }
}

/// Length of a complete chunked body at the start of `buf` (chunks, last chunk, trailers and the
/// final CRLF), or `None` when more bytes are needed.
pub fn chunked_len(buf: &[u8]) -> Result<Option<usize>, ResponseError> {
    let mut pos = 0;
    loop {
        let Some(line) = line_at(buf, pos)? else {
            return Ok(None);
        };
        // chunk-size [; extensions], possibly with whitespace before the extensions.
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let size_text = String::from_utf8_lossy(size_text);
        let size_text = size_text.trim_matches([' ', '\t']);
        let size = u64::from_str_radix(size_text, 16)
            .ok()
            .filter(|n| *n <= MAX_BODY && !size_text.starts_with('+'))
            .ok_or_else(|| {
                ResponseError::BadChunkSize(String::from_utf8_lossy(line).into_owned())
            })?;
        pos += line.len() + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(trailer) = line_at(buf, pos)? else {
                    return Ok(None);
                };
                pos += trailer.len() + 2;
                if trailer.is_empty() {
                    return Ok(Some(pos));
                }
            }
        }
        let data_end = pos + size as usize;
        match buf.get(data_end..data_end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => pos = data_end + 2,
            Some(_) => return Err(ResponseError::MissingChunkEnd),
        }
    }
}

/// The line starting at `pos` without its CRLF, `None` when its CRLF has not arrived yet.
fn line_at(buf: &[u8], pos: usize) -> Result<Option<&[u8]>, ResponseError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(rest.get(..end)),
        None if rest.len() > MAX_HEAD => Err(ResponseError::LineTooLong),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_200: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: application/json\r\n\
        Content-Length: 42\r\nConnection: keep-alive\r\n\r\n{\"id\":\"f\",\"name\":\"report.txt\",\"size\":2048}";
    const CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n\
        5\r\n{\"sto\r\nA;ext=1\r\nred\":true}\r\n0\r\n\r\n";

    fn complete(buf: &[u8]) -> Response {
        match parse(buf).unwrap() {
            Parsed::Complete(r) => r,
            other => panic!("expected a complete response, got {other:?}"),
        }
    }

    #[test]
    fn content_length_response_is_framed() {
        let r = complete(NGINX_200);
        assert_eq!(
            r,
            Response {
                status: 200,
                len: NGINX_200.len(),
                close: false
            }
        );
    }

    #[test]
    fn bytes_after_the_response_are_not_part_of_it() {
        let mut two = NGINX_200.to_vec();
        two.extend_from_slice(NGINX_200);
        assert_eq!(complete(&two).len, NGINX_200.len());
    }

    #[test]
    fn chunked_response_with_extension_is_framed() {
        let r = complete(CHUNKED);
        assert_eq!(
            r,
            Response {
                status: 201,
                len: CHUNKED.len(),
                close: false
            }
        );
    }

    #[test]
    fn chunked_response_with_trailers_is_framed() {
        let msg = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n";
        assert_eq!(complete(msg).len, msg.len());
    }

    #[test]
    fn every_split_point_is_partial_until_the_last_byte() {
        for msg in [NGINX_200, CHUNKED] {
            for cut in 0..msg.len() {
                assert_eq!(
                    parse(&msg[..cut]).unwrap(),
                    Parsed::Partial,
                    "cut at {cut} of {}",
                    msg.len()
                );
            }
            assert_eq!(complete(msg).len, msg.len());
        }
    }

    #[test]
    fn interim_continue_is_skipped() {
        let msg =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(
            complete(msg),
            Response {
                status: 204,
                len: msg.len(),
                close: false
            }
        );
    }

    #[test]
    fn connection_close_and_http_1_0_are_reported() {
        assert!(
            complete(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .close
        );
        assert!(complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").close);
        assert!(
            !complete(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
                .close
        );
    }

    #[test]
    fn body_without_length_runs_until_close() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap(),
            Parsed::UntilClose { status: 200 }
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap(),
            Parsed::UntilClose { status: 200 }
        );
    }

    #[test]
    fn malformed_framing_is_an_error() {
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 4x\r\n\r\n"),
            Err(ResponseError::BadContentLength(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
            Err(ResponseError::ConflictingContentLength)
        );
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(ResponseError::BadChunkSize(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n"),
            Err(ResponseError::MissingChunkEnd)
        );
        assert!(matches!(
            parse(b"HTTP/1.1 2xx OK\r\n\r\n"),
            Err(ResponseError::Head(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Err(ResponseError::Upgrade)
        );
    }

    #[test]
    fn endless_head_is_refused() {
        let mut head = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        head.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&head), Err(ResponseError::HeadTooLarge));
    }
}
