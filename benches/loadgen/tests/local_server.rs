//! The generator against a tiny HTTP/1.1 server on 127.0.0.1 (ephemeral port) in the same test:
//! request counts follow rate × duration, latencies are recorded, responses framed by length,
//! chunked and split across writes keep the connection alive, `Connection: close` reconnects.
//! Bounds are generous: the machine may be busy.

#![allow(
    clippy::unwrap_used,
    reason = "integration-test helpers: a failed unwrap is a failed test"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lexecon_loadgen::{requests, run, LoadgenError, RunConfig, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    connections: AtomicU64,
    first_lines: Mutex<Vec<String>>,
    authorized: AtomicU64,
}

/// Answers every request; `status` decides the answer, `close` whether to close after it.
async fn serve(status: u16, close: bool) -> (std::net::SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            // Without it, Nagle holds the second part of a split response for the client's delayed ACK.
            socket.set_nodelay(true).unwrap();
            seen2.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(connection(socket, Arc::clone(&seen2), status, close));
        }
    });
    (addr, seen)
}

async fn connection(mut socket: TcpStream, seen: Arc<Seen>, status: u16, close: bool) {
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        // Read one request: head, then Content-Length bytes of body.
        let (head_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(len) = req.parse(&buf).unwrap() {
                let line = format!("{} {}", req.method.unwrap(), req.path.unwrap());
                seen.first_lines.lock().unwrap().push(line);
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                };
                assert_eq!(header("host").unwrap().value, b"load.test");
                if header("authorization").is_some_and(|h| h.value == b"Bearer test-token") {
                    seen.authorized.fetch_add(1, Ordering::Relaxed);
                }
                let body = header("content-length").map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
                break (len, body);
            }
            if socket.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        };
        while buf.len() < head_len + body_len {
            if socket.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
        buf.drain(..head_len + body_len);
        seen.requests.fetch_add(1, Ordering::Relaxed);
        let connection = if close { "Connection: close\r\n" } else { "" };
        if n.is_multiple_of(2) {
            // Content-Length, head and body in separate writes.
            let head = format!("HTTP/1.1 {status} X\r\n{connection}Content-Type: application/json\r\nContent-Length: 15\r\n\r\n");
            socket.write_all(head.as_bytes()).await.unwrap();
            tokio::task::yield_now().await;
            socket.write_all(br#"{"stored":true}"#).await.unwrap();
        } else {
            // Chunked, the last chunk in a separate write.
            let head = format!("HTTP/1.1 {status} X\r\n{connection}Transfer-Encoding: chunked\r\n\r\n7\r\n{{\"id\":1\r\n");
            socket.write_all(head.as_bytes()).await.unwrap();
            tokio::task::yield_now().await;
            socket.write_all(b"1\r\n}\r\n0\r\n\r\n").await.unwrap();
        }
        n += 1;
        if close {
            return;
        }
    }
}

fn config(
    addr: std::net::SocketAddr,
    workload: Workload,
    rate: f64,
    connections: usize,
) -> RunConfig {
    RunConfig {
        addr,
        requests: Arc::new(requests(workload, Some("test-token")).unwrap()),
        rate,
        connections,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn get_at_constant_rate_completes_about_rate_times_duration() {
    let (addr, seen) = serve(200, false).await;
    let report = run(config(addr, Workload::Get, 400.0, 4)).await.unwrap();

    assert_eq!(report.scheduled, 400);
    assert_eq!(report.errors, 0, "{:?}", report.error_messages);
    assert_eq!(report.status_errors, 0);
    // A target that keeps up gets all 400; a busy test machine may leave some unsent.
    assert!(
        (200..=400).contains(&report.requests),
        "{}",
        report.result_line()
    );
    // Nothing is both completed and missed.
    assert!(
        report.requests + report.missed <= report.scheduled + 80,
        "{}",
        report.result_line()
    );
    assert_eq!(report.latency.len(), report.requests);
    assert!(
        report.send_lag.len() + report.behind == report.requests,
        "{}",
        report.result_line()
    );
    assert!(report.latency.max() > 0);
    assert!(report.latency.value_at_quantile(0.5) < Duration::from_secs(1).as_nanos() as u64);
    let rps = report.rps();
    assert!((200.0..=400.0).contains(&rps), "{rps}");
    // 80 warm-up requests were sent too, over the 4 keep-alive connections opened up front.
    assert_eq!(seen.connections.load(Ordering::Relaxed), 4);
    let served = seen.requests.load(Ordering::Relaxed);
    assert!(served >= report.requests + 40 && served <= 480, "{served}");
    assert_eq!(seen.authorized.load(Ordering::Relaxed), served);
    let lines = seen.first_lines.lock().unwrap();
    assert!(lines.contains(&"GET /v1/files/f0".to_owned()));
    assert!(lines.contains(&"GET /v1/files/f399".to_owned()));
    assert!(lines.iter().all(|l| l.starts_with("GET /v1/files/f")));

    let line = report.result_line();
    println!("{line}");
    assert!(line.starts_with("RESULT rps="), "{line}");
    for field in [
        " requests=",
        " p50=",
        " p90=",
        " p99=",
        " p999=",
        " max=",
        " errors=0",
        " status_errors=0",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn error_statuses_are_counted_and_closed_connections_reopened() {
    let (addr, seen) = serve(403, true).await;
    let report = run(config(addr, Workload::Post, 200.0, 2)).await.unwrap();

    assert_eq!(report.errors, 0, "{:?}", report.error_messages);
    assert!(report.requests >= 100, "{}", report.result_line());
    // Warm-up answers count as status errors too.
    assert!(
        report.status_errors >= report.requests,
        "{}",
        report.result_line()
    );
    // Every request on its own connection.
    let served = seen.requests.load(Ordering::Relaxed);
    assert_eq!(seen.connections.load(Ordering::Relaxed), served);
    assert!(seen
        .first_lines
        .lock()
        .unwrap()
        .iter()
        .all(|l| l == "POST /v1/records"));
}

#[tokio::test(flavor = "current_thread")]
async fn closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = run(config(addr, Workload::Get, 10.0, 1)).await.unwrap_err();
    assert!(matches!(err, LoadgenError::Connect { .. }), "{err}");
}
