//! `loadgen`: the command line of `lexecon-loadgen`. Parses flags, builds the runtime
//! (current-thread unless `--threads` asks for more), runs the schedule and prints one RESULT line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use lexecon_loadgen::{loopback_target, requests, run, RunConfig, Workload};

/// Open-loop, constant-rate HTTP/1.1 load on loopback (wrk2-style, corrected for coordinated
/// omission): latency runs from each request's scheduled send time to the end of its response.
/// Prints `RESULT rps=… requests=… p50=… p90=… p99=… p999=… max=… errors=… status_errors=… …`
/// (latencies in µs) and exits with 1 on any socket error or timeout.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Target: 127.x.y.z:PORT, [::1]:PORT or localhost:PORT (an http:// prefix is accepted);
    /// anything else is refused.
    #[arg(long)]
    target: String,
    /// `get`: GET /v1/files/f<0..999>; `post`: POST /v1/records with a 1,024-byte JSON body.
    #[arg(long, default_value = "get")]
    workload: Workload,
    /// Requests per second, all connections together.
    #[arg(long)]
    rate: f64,
    /// Keep-alive connections sharing the schedule.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured time, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time at the same rate before the measurement, not recorded, e.g. 2s.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Longest wait for one response; a request that takes longer counts as an error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Bearer token for the Authorization header (none sent when empty).
    #[arg(long, env = "LOAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Runtime worker threads; 1 (the default) is a current-thread runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = loopback_target(&args.target)?;
    let config = RunConfig {
        addr,
        requests: Arc::new(requests(args.workload, args.token.as_deref())?),
        rate: args.rate,
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
    };
    let runtime = match args.threads {
        0 => bail!("--threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("cannot start the tokio runtime")?;
    let report = runtime.block_on(run(config))?;
    println!("{}", report.result_line());
    for message in &report.error_messages {
        eprintln!("loadgen: {message}");
    }
    if report.errors > 0 {
        bail!("{} socket errors or timeouts", report.errors);
    }
    if report.requests == 0 {
        bail!("no measured request completed");
    }
    Ok(())
}
