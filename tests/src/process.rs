//! The `lexecon` binary as a child process in a test: killed when the test ends (pass or fail),
//! signalled, waited for. Shared by the suites that run the real binary.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped (a failed test leaves nothing running).
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lexecon serve --config CONFIG` in `dir` (its output discarded) and waits until its
/// proxy listens on `proxy`.
pub fn serve(dir: &Path, config: &Path, proxy: SocketAddr) -> Served {
    let child = Command::new(crate::lexecon_binary())
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = Served(child);
    wait_until_accepting(proxy, &mut served.0);
    served
}

/// Sends signal `name` (`TERM`, `HUP`, …) to `child`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// Waits up to 30 s until `addr` accepts connections, failing if `child` exits first.
pub fn wait_until_accepting(addr: SocketAddr, child: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("lexecon serve exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "lexecon serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 30 s (else fails with `why`) for `child` to exit.
pub fn exit_status(child: &mut Child, why: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{why}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
