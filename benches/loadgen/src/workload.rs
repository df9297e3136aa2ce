//! The request bytes of the three workloads of `benches/load/wrk.lua`, built once before a run:
//! `get` is `GET /v1/files/f<i>` for i in 0..1000 (the run cycles through them), `post` is
//! `POST /v1/records` with a 1,024-byte JSON body, `mcp` is an MCP `tools/call` of `search_docs`
//! (`POST /mcp`, JSON-RPC, the query cycling through 1,000 values). All carry `Host: load.test`
//! and, when a token is given, `Authorization: Bearer <token>`.

use std::str::FromStr;

use crate::LoadgenError;

/// Number of distinct file ids the `get` workload cycles through (as wrk.lua).
pub const FILE_IDS: usize = 1000;
/// Size of the `post` workload's JSON body in bytes.
pub const POST_BODY_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Get,
    Post,
    Mcp,
}

impl FromStr for Workload {
    type Err = LoadgenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "get" => Ok(Self::Get),
            "post" => Ok(Self::Post),
            "mcp" => Ok(Self::Mcp),
            other => Err(LoadgenError::UnknownWorkload(other.to_owned())),
        }
    }
}

/// `{"table":"events","rows":25,"purpose":"sync","payload":"xxx…"}`, padded to [`POST_BODY_LEN`].
pub fn post_body() -> String {
    let head = r#"{"table":"events","rows":25,"purpose":"sync","payload":""#;
    let tail = r#""}"#;
    let mut body = String::with_capacity(POST_BODY_LEN);
    body.push_str(head);
    body.extend(std::iter::repeat_n(
        'x',
        POST_BODY_LEN - head.len() - tail.len(),
    ));
    body.push_str(tail);
    body
}

/// The JSON-RPC body of the `mcp` workload's request `i`: a `tools/call` of `search_docs`.
pub fn mcp_body(i: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"search_docs","arguments":{{"query":"quarterly report {i}"}}}}}}"#
    )
}

/// The complete request messages of `workload`; request k of a run sends element `k % len`.
pub fn requests(workload: Workload, token: Option<&str>) -> Result<Vec<Vec<u8>>, LoadgenError> {
    let auth = match token.filter(|t| !t.is_empty()) {
        // INVARIANT: nothing but visible ASCII reaches the header block (no CR/LF injection).
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => return Err(LoadgenError::BadToken),
        Some(t) => format!("Authorization: Bearer {t}\r\n"),
        None => String::new(),
    };
    Ok(match workload {
        Workload::Get => (0..FILE_IDS)
            .map(|i| {
                format!("GET /v1/files/f{i} HTTP/1.1\r\nHost: load.test\r\n{auth}\r\n").into_bytes()
            })
            .collect(),
        Workload::Post => {
            let body = post_body();
            vec![format!(
                "POST /v1/records HTTP/1.1\r\nHost: load.test\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()]
        }
        Workload::Mcp => (0..FILE_IDS)
            .map(|i| {
                let body = mcp_body(i);
                format!(
                    "POST /mcp HTTP/1.1\r\nHost: load.test\r\n{auth}Content-Type: application/json\r\n\
                     Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_requests_cycle_a_thousand_file_ids() {
        let reqs = requests(Workload::Get, Some("tok.en-1")).unwrap();
        assert_eq!(reqs.len(), 1000);
        assert_eq!(
            String::from_utf8(reqs[0].clone()).unwrap(),
            "GET /v1/files/f0 HTTP/1.1\r\nHost: load.test\r\nAuthorization: Bearer tok.en-1\r\n\r\n"
        );
        assert!(reqs[999].starts_with(b"GET /v1/files/f999 HTTP/1.1\r\n"));
    }

    #[test]
    fn post_request_carries_the_1024_byte_json_body() {
        let body = post_body();
        assert_eq!(body.len(), 1024);
        assert!(body.starts_with(r#"{"table":"events","rows":25,"purpose":"sync","payload":"xxxx"#));
        assert!(body.ends_with(r#"xx"}"#));
        let reqs = requests(Workload::Post, Some("t")).unwrap();
        assert_eq!(reqs.len(), 1);
        let text = String::from_utf8(reqs[0].clone()).unwrap();
        let (head, sent_body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(sent_body, body);
        assert!(head.starts_with("POST /v1/records HTTP/1.1\r\n"));
        for line in [
            "Host: load.test",
            "Authorization: Bearer t",
            "Content-Type: application/json",
            "Content-Length: 1024",
        ] {
            assert!(head.lines().any(|l| l == line), "missing {line} in {head}");
        }
    }

    #[test]
    fn mcp_requests_are_json_rpc_tool_calls_with_their_length() {
        let reqs = requests(Workload::Mcp, Some("t")).unwrap();
        assert_eq!(reqs.len(), 1000);
        let text = String::from_utf8(reqs[7].clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /mcp HTTP/1.1\r\n"));
        assert!(head
            .lines()
            .any(|l| l == format!("Content-Length: {}", body.len())));
        let rpc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(rpc["method"], "tools/call");
        assert_eq!(rpc["id"], 7);
        assert_eq!(rpc["params"]["name"], "search_docs");
        assert_eq!(rpc["params"]["arguments"]["query"], "quarterly report 7");
    }

    #[test]
    fn no_token_sends_no_authorization_header() {
        let reqs = requests(Workload::Get, None).unwrap();
        assert_eq!(
            reqs[1],
            b"GET /v1/files/f1 HTTP/1.1\r\nHost: load.test\r\n\r\n"
        );
        assert_eq!(requests(Workload::Get, Some("")).unwrap()[1], reqs[1]);
    }

    #[test]
    fn token_with_line_break_is_refused() {
        assert!(matches!(
            requests(Workload::Get, Some("a\r\nX-Evil: 1")),
            Err(LoadgenError::BadToken)
        ));
        assert!(matches!(
            requests(Workload::Post, Some("a b")),
            Err(LoadgenError::BadToken)
        ));
    }

    #[test]
    fn workload_names_parse() {
        assert_eq!("get".parse::<Workload>().unwrap(), Workload::Get);
        assert_eq!("post".parse::<Workload>().unwrap(), Workload::Post);
        assert_eq!("mcp".parse::<Workload>().unwrap(), Workload::Mcp);
        assert!("put".parse::<Workload>().is_err());
    }
}
