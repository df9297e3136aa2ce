//! `lexecon ledger verify|tail|export`: the offline ledger commands, as a clap subcommand enum the
//! binary embeds and a [`run`] that writes to any output and returns the exit code. Reads files only;
//! never starts a writer or modifies a ledger.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use lexecon_ledger::export::{export, tail, ExportFormat};
use lexecon_ledger::verify::verify_dir;

/// `lexecon ledger …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum LedgerCommand {
    /// Check every entry's hash, link and seq, and (with --public-key) every checkpoint signature.
    /// Exit code 0 when the chain is intact, 1 when it is broken.
    Verify {
        /// Ledger directory.
        dir: PathBuf,
        /// Ed25519 public key: PEM (`PUBLIC KEY`) or a JWKS file with one key.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the last entries as written.
    Tail {
        dir: PathBuf,
        /// How many entries.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        n: usize,
    },
    /// Export entries with since <= timestamp < until (RFC 3339) for audit.
    Export {
        dir: PathBuf,
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        #[arg(long)]
        until: Option<jiff::Timestamp>,
        #[arg(long, default_value_t = ExportFormat::Jsonl, value_parser = PossibleValuesParser::new(["jsonl", "csv"]).try_map(|s| s.parse::<ExportFormat>()))]
        format: ExportFormat,
    },
}

/// Runs a ledger command; returns the process exit code.
pub fn run(cmd: LedgerCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        LedgerCommand::Verify {
            dir,
            public_key,
            json,
        } => {
            let key = public_key
                .as_deref()
                .map(lexecon_keys::read_verifying_key)
                .transpose()?;
            let report = verify_dir(&dir, key.as_ref())
                .with_context(|| format!("verifying {}", dir.display()))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                writeln!(out)?;
            } else {
                writeln!(out, "entries checked: {}", report.entries_checked)?;
                writeln!(out, "segments: {}", report.segments)?;
                writeln!(
                    out,
                    "head: seq {} hash {}",
                    report.head_seq, report.head_hash
                )?;
                writeln!(
                    out,
                    "checkpoints: {} verified, {} not checked{}",
                    report.checkpoints_verified,
                    report.checkpoints_unchecked,
                    if key.is_none() && report.checkpoints_unchecked > 0 {
                        " (pass --public-key to check them)"
                    } else {
                        ""
                    }
                )?;
                match &report.first_error {
                    None => writeln!(out, "OK")?,
                    Some(f) => writeln!(
                        out,
                        "FAILED at seq {}: {} ({}) [{} line {}]",
                        f.seq,
                        serde_json::to_value(f.reason)?
                            .as_str()
                            .unwrap_or("unknown"),
                        f.detail,
                        f.segment.display(),
                        f.line
                    )?,
                }
            }
            Ok(if report.is_ok() { 0 } else { 1 })
        }
        LedgerCommand::Tail { dir, n } => {
            for line in tail(&dir, n).with_context(|| format!("reading {}", dir.display()))? {
                writeln!(out, "{line}")?;
            }
            Ok(0)
        }
        LedgerCommand::Export {
            dir,
            since,
            until,
            format,
        } => {
            export(&dir, since, until, format, out)
                .with_context(|| format!("exporting {}", dir.display()))?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LedgerCommand,
    }

    #[test]
    fn ledger_commands_parse_from_the_command_line() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ledger",
            "export",
            "/var/lib/lexecon/ledger",
            "--since",
            "2026-11-01T00:00:00Z",
            "--format",
            "csv",
        ])
        .unwrap();
        match cli.cmd {
            LedgerCommand::Export {
                since,
                until,
                format,
                ..
            } => {
                assert_eq!(since.unwrap().as_second(), 1_793_491_200);
                assert_eq!(until, None);
                assert_eq!(format, ExportFormat::Csv);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["ledger", "export", "d", "--since", "yesterday"]).is_err());
        let cli = Cli::try_parse_from(["ledger", "tail", "d", "-n", "3"]).unwrap();
        assert!(matches!(cli.cmd, LedgerCommand::Tail { n: 3, .. }));
    }

    #[tokio::test]
    async fn verify_command_prints_the_failure_and_exits_1() {
        let dir = tempfile::tempdir().unwrap();
        let handle = lexecon_ledger::LedgerWriter::start(
            lexecon_ledger::LedgerConfig::new(dir.path()),
            None,
        )
        .unwrap();
        for i in 1..=6 {
            let draft = lexecon_ledger::EntryDraft::event(
                lexecon_ledger::EventType::SystemStartup,
                format!("event {i}"),
            );
            handle.append(draft).await.unwrap();
        }
        handle.shutdown().await.unwrap();
        let segment = dir.path().join(format!("ledger-{:020}.jsonl", 1));
        let verify = || {
            let mut out = Vec::new();
            let command = LedgerCommand::Verify {
                dir: dir.path().to_owned(),
                public_key: None,
                json: false,
            };
            let code = run(command, &mut out).unwrap();
            (code, String::from_utf8(out).unwrap())
        };
        let (code, text) = verify();
        assert_eq!(code, 0);
        assert!(text.contains("entries checked: 6"), "{text}");

        let text = std::fs::read_to_string(&segment).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(3);
        std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
        let (code, text) = verify();
        assert_eq!(code, 1);
        assert!(text.contains("FAILED at seq 4: gap"), "{text}");

        let mut out = Vec::new();
        run(
            LedgerCommand::Tail {
                dir: dir.path().to_owned(),
                n: 2,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }
}
