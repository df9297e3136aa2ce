//! The `lexecon` command: parses the command line and runs it. Errors are one clear line on
//! stderr and exit code 1 (2 for usage errors, from clap); never a backtrace.

use std::process::ExitCode;

use clap::Parser;

// mimalloc instead of glibc malloc: the request path allocates many short-lived small objects
// (pingora's header maps, decisions, ledger drafts); glibc's malloc/free were ~12 % of the proxy
// thread's samples under load (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = lexecon::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match lexecon::cli::run(cli, &mut stdout) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
