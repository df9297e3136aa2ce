//! End-to-end: TLS to the upstream. The upstream is a TLS listener (pingora + rustls) with a
//! certificate for `localhost` issued by a test CA; the proxy trusts that CA through
//! `server.ca_file`, sends SNI, and forwards over TLS.

use lexecon_tests as support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use support::{free_addr, get, start, RuleTable};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

struct Stop(Arc<tokio::sync::Notify>);

#[async_trait]
impl ShutdownSignalWatch for Stop {
    async fn recv(&self) -> ShutdownSignal {
        self.0.notified().await;
        ShutdownSignal::FastShutdown
    }
}

/// The demo upstream behind TLS on `addr`; notify the returned handle to stop it.
#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a failed set-up must fail the test"
)]
fn tls_upstream(addr: SocketAddr) -> (std::thread::JoinHandle<()>, Arc<tokio::sync::Notify>) {
    let mut server = Server::new_with_opt_and_conf(
        None,
        ServerConf {
            threads: 1,
            ..ServerConf::default()
        },
    );
    server.bootstrap();
    let mut svc = Service::new(
        "tls upstream".to_string(),
        lexecon::demo::DemoUpstream::new(),
    );
    svc.add_tls(
        &addr.to_string(),
        &fixture("upstream.pem"),
        &fixture("upstream.key"),
    )
    .unwrap();
    server.add_service(svc);
    let stop = Arc::new(tokio::sync::Notify::new());
    let signal = Stop(stop.clone());
    let thread = std::thread::spawn(move || {
        server.run(RunArgs {
            shutdown_signal: Box::new(signal),
        })
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS upstream did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (thread, stop)
}

fn config(
    upstream: SocketAddr,
    ca: &str,
    sni: &str,
    proxy: SocketAddr,
    admin: SocketAddr,
) -> String {
    format!(
        r#"
listeners: {{proxy: "{proxy}", admin: "{admin}"}}
server: {{ca_file: "{ca}"}}
upstreams:
  ehr: {{addrs: ["{upstream}"], tls: true, sni: {sni}}}
identity: {{anonymous_actor: "act_ai_agent:anon"}}
routes:
  - {{name: fhir, domain: healthcare, upstream: ehr}}
"#
    )
}

#[test]
fn request_is_forwarded_over_tls_to_an_upstream_with_a_trusted_certificate() {
    let upstream = free_addr();
    let (thread, stop) = tls_upstream(upstream);
    let rules = RuleTable::new(&[], &[]);
    let ca = fixture("ca.pem");
    let server = start(move |p, a| config(upstream, &ca, "localhost", p, a), rules);
    let r = get(
        &format!("http://{}/fhir/Patient/p-1", server.proxy_addr),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resourceType"], "Patient");
    assert_eq!(r.json()["id"], "p-1");
    server.shutdown();
    stop.notify_one();
    thread.join().unwrap();
}

#[test]
fn upstream_certificate_not_valid_for_the_sni_is_refused_with_502() {
    let upstream = free_addr();
    let (thread, stop) = tls_upstream(upstream);
    let rules = RuleTable::new(&[], &[]);
    let ca = fixture("ca.pem");
    let server = start(
        move |p, a| config(upstream, &ca, "other.example", p, a),
        rules,
    );
    let r = get(
        &format!("http://{}/fhir/Patient/p-1", server.proxy_addr),
        &[],
    );
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["error"], "upstream_unavailable");
    server.shutdown();
    stop.notify_one();
    thread.join().unwrap();
}
