//! The send loop. Every connection is opened before the schedule starts; then each connection task
//! waits for its next request's due time, sends it, reads the whole response and records
//! `response end − due time`. A connection still waiting for an earlier response when a request
//! falls due sends it as soon as it can, and that request's latency still counts from its due time
//! (wrk2's correction for coordinated omission). One request per connection is in flight (no
//! pipelining). Sending stops at the end of the schedule; requests a connection had not sent by
//! then are reported as `missed`. Requests sent late because their connection was busy are
//! counted as `behind`; the send lag of the others is the generator's own lateness. A socket error or timeout is counted, the connection reopened and
//! the schedule continued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pacer::Pacer;
use crate::response::{self, Parsed, Response};
use crate::{LoadgenError, Schedule};

/// Highest latency the histograms hold (larger values are clamped to it).
const HISTOGRAM_MAX: Duration = Duration::from_secs(60);
/// How long after the last connection is opened the schedule starts.
const START_LEAD: Duration = Duration::from_millis(5);
/// Error messages kept for the report (the first ones).
const KEPT_ERRORS: usize = 5;

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Loopback address (see [`crate::loopback_target`]).
    pub addr: SocketAddr,
    /// Complete request messages; request k sends `requests[k % len]`.
    pub requests: Arc<Vec<Vec<u8>>>,
    /// Requests per second, all connections together.
    pub rate: f64,
    pub connections: usize,
    /// Sent at the same rate before the measurement; not recorded.
    pub warmup: Duration,
    pub duration: Duration,
    /// Longest wait for one response (connect, write and read); counted as an error.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// Due time → response fully read, nanoseconds, measured requests only.
    pub latency: Histogram<u64>,
    /// Due time → request written, nanoseconds, for measured requests whose connection was free
    /// before the due time: the generator's own lateness (timer wake-up, waiting for the CPU).
    pub send_lag: Histogram<u64>,
    /// Measured requests sent late because their connection was still waiting for the previous
    /// response at the due time (the target was slower than the connection's interval).
    pub behind: u64,
    /// Measured requests that got a complete response.
    pub requests: u64,
    /// Socket errors, timeouts and malformed responses (warm-up included).
    pub errors: u64,
    /// Responses with status >= 400 (warm-up included).
    pub status_errors: u64,
    /// Scheduled requests not sent before the end of the run (their connection was behind).
    pub missed: u64,
    /// Measured requests in the schedule.
    pub scheduled: u64,
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
    /// The first few error messages.
    pub error_messages: Vec<String>,
}

impl Report {
    /// Completed measured requests per second of the measurement.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64()
    }

    /// `RESULT rps=… requests=… p50=… p90=… p99=… p999=… max=… errors=… status_errors=…` (latencies
    /// in µs, as `benches/load/wrk.lua`), then loadgen's own fields.
    pub fn result_line(&self) -> String {
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "RESULT rps={:.1} requests={} p50={:.1} p90={:.1} p99={:.1} p999={:.1} max={:.1} errors={} status_errors={} \
             rate={:.1} connections={} scheduled={} missed={} behind={} send_lag_p50={:.1} send_lag_p99={:.1} \
             send_lag_max={:.1}",
            self.rps(),
            self.requests,
            us(&self.latency, 0.5),
            us(&self.latency, 0.9),
            us(&self.latency, 0.99),
            us(&self.latency, 0.999),
            self.latency.max() as f64 / 1000.0,
            self.errors,
            self.status_errors,
            self.rate,
            self.connections,
            self.scheduled,
            self.missed,
            self.behind,
            us(&self.send_lag, 0.5),
            us(&self.send_lag, 0.99),
            self.send_lag.max() as f64 / 1000.0,
        )
    }
}

fn histogram() -> Result<Histogram<u64>, LoadgenError> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX.as_nanos() as u64, 3)
        .map_err(|e| LoadgenError::Histogram(e.to_string()))
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

/// Per-connection counters, added up at the end.
struct Stats {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    requests: u64,
    behind: u64,
    errors: u64,
    status_errors: u64,
    missed: u64,
    error_messages: Vec<String>,
}

impl Stats {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_messages.len() < KEPT_ERRORS {
            self.error_messages.push(message);
        }
    }
}

/// Runs the schedule against `config.addr` and returns when every connection has finished: at
/// most `warmup + duration + timeout` after the connections are open.
pub async fn run(config: RunConfig) -> Result<Report, LoadgenError> {
    if config.requests.is_empty() {
        return Err(LoadgenError::OutOfRange {
            what: "requests",
            value: "0".into(),
            expected: "at least one",
        });
    }
    // Validates rate, connections and durations before anything connects.
    Schedule::new(
        Instant::now(),
        config.rate,
        config.connections,
        config.warmup,
        config.duration,
    )?;
    let mut streams = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        streams.push(
            connect(config.addr, config.timeout)
                .await
                .map_err(|source| LoadgenError::Connect {
                    addr: config.addr,
                    source,
                })?,
        );
    }
    let schedule = Arc::new(Schedule::new(
        Instant::now() + START_LEAD,
        config.rate,
        config.connections,
        config.warmup,
        config.duration,
    )?);
    let config = Arc::new(config);
    let mut tasks = Vec::with_capacity(streams.len());
    for (conn, stream) in streams.into_iter().enumerate() {
        let stats = Stats {
            latency: histogram()?,
            send_lag: histogram()?,
            requests: 0,
            behind: 0,
            errors: 0,
            status_errors: 0,
            missed: 0,
            error_messages: Vec::new(),
        };
        tasks.push(tokio::spawn(drive(
            conn as u64,
            stream,
            Arc::clone(&schedule),
            Arc::clone(&config),
            stats,
        )));
    }
    let mut report = Report {
        latency: histogram()?,
        send_lag: histogram()?,
        requests: 0,
        behind: 0,
        errors: 0,
        status_errors: 0,
        missed: 0,
        scheduled: schedule.measured_count(),
        rate: config.rate,
        connections: config.connections,
        duration: config.duration,
        error_messages: Vec::new(),
    };
    for task in tasks {
        let stats = task.await.map_err(|e| LoadgenError::Task(e.to_string()))?;
        report
            .latency
            .add(&stats.latency)
            .map_err(|e| LoadgenError::Histogram(e.to_string()))?;
        report
            .send_lag
            .add(&stats.send_lag)
            .map_err(|e| LoadgenError::Histogram(e.to_string()))?;
        report.requests += stats.requests;
        report.behind += stats.behind;
        report.errors += stats.errors;
        report.status_errors += stats.status_errors;
        report.missed += stats.missed;
        for m in stats.error_messages {
            if report.error_messages.len() < KEPT_ERRORS {
                report.error_messages.push(m);
            }
        }
    }
    Ok(report)
}

async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection: requests `conn`, `conn + N`, `conn + 2N`, … of the schedule.
async fn drive(
    conn: u64,
    stream: TcpStream,
    schedule: Arc<Schedule>,
    config: Arc<RunConfig>,
    mut stats: Stats,
) -> Stats {
    let mut pacer = match Pacer::new() {
        Ok(p) => p,
        Err(e) => {
            stats.error(format!("connection {conn}: cannot create its timer: {e}"));
            stats.missed += schedule.remaining_from(conn);
            return stats;
        }
    };
    let mut stream = Some(stream);
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut k = conn;
    while schedule.contains(k) {
        let due = schedule.due(k);
        let free_before_due = Instant::now() < due;
        if let Err(e) = pacer.wait_until(due).await {
            stats.error(format!("connection {conn}: timer: {e}"));
            stats.missed += schedule.remaining_from(k);
            break;
        }
        let sent = Instant::now();
        if sent >= schedule.end() {
            // Behind schedule at the end of the run: what is left was never sent.
            stats.missed += schedule.remaining_from(k);
            break;
        }
        let measured = schedule.is_measured(k);
        if measured {
            if free_before_due {
                record(&mut stats.send_lag, sent - due);
            } else {
                stats.behind += 1;
            }
        }
        let request = config
            .requests
            .get(k as usize % config.requests.len())
            .map_or(&[][..], Vec::as_slice);
        let outcome = tokio::time::timeout(
            config.timeout,
            exchange(&mut stream, config.addr, request, &mut buf),
        )
        .await;
        match outcome {
            Ok(Ok(response)) => {
                if measured {
                    record(&mut stats.latency, Instant::now() - due);
                    stats.requests += 1;
                }
                if response.status >= 400 {
                    stats.status_errors += 1;
                }
                if response.close {
                    stream = None;
                }
            }
            Ok(Err(e)) => {
                stats.error(format!("connection {conn}, request {k}: {e}"));
                stream = None;
            }
            Err(_) => {
                stats.error(format!(
                    "connection {conn}, request {k}: no complete response within {:?}",
                    config.timeout
                ));
                stream = None;
            }
        }
        k += schedule.connections();
    }
    stats
}

#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Response(#[from] response::ResponseError),
    #[error("connection closed after {0} bytes of the response")]
    Closed(usize),
    #[error("{0} unexpected bytes after the response")]
    Trailing(usize),
}

/// Writes one request and reads its whole response, opening the connection first if needed.
async fn exchange(
    stream: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<Response, ExchangeError> {
    let socket = match stream {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            stream.insert(s)
        }
    };
    socket.write_all(request).await?;
    buf.clear();
    loop {
        let parsed = response::parse(buf)?;
        if let Parsed::Complete(response) = parsed {
            // One request in flight: the server has nothing else to send.
            return match buf.len() - response.len {
                0 => Ok(response),
                extra => Err(ExchangeError::Trailing(extra)),
            };
        }
        buf.reserve(8 * 1024);
        if socket.read_buf(buf).await? == 0 {
            return match parsed {
                Parsed::UntilClose { status } => Ok(Response {
                    status,
                    len: buf.len(),
                    close: true,
                }),
                _ => Err(ExchangeError::Closed(buf.len())),
            };
        }
    }
}
