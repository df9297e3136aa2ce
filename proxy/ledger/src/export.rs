//! Reading a ledger for people: [`tail`] (the last lines as written) and [`export`] (entries in a time
//! window as JSON lines or CSV, for auditors). Reads files only; never verifies (that is
//! [`super::verify_dir`]'s job) and never modifies them.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::entry::LedgerEntry;
use super::segment::{list_segments, SegmentBytes};
use super::LedgerError;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// The ledger lines as written (hashes included, so the export itself can be checked).
    Jsonl,
    /// One row per entry with the columns in [`CSV_COLUMNS`].
    Csv,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            other => Err(format!(
                "unknown export format {other:?} (expected jsonl or csv)"
            )),
        }
    }
}

/// CSV header. `compliance` is `framework:control1|control2:status` joined by `;`; `context` is JSON.
pub const CSV_COLUMNS: [&str; 21] = [
    "seq",
    "timestamp",
    "event_type",
    "domain",
    "request_id",
    "decision_id",
    "actor",
    "action",
    "resource",
    "decision",
    "rule_id",
    "reason",
    "policy_version_hash",
    "compliance",
    "context_digest",
    "context",
    "key_id",
    "signature",
    "previous_hash",
    "entry_hash",
    "segment",
];

/// The last `n` complete lines of the ledger in `dir`, oldest first, exactly as written.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<String>, LedgerError> {
    let mut out: Vec<String> = Vec::new();
    if n == 0 {
        return Ok(out);
    }
    for segment in list_segments(dir)?.iter().rev() {
        let bytes = SegmentBytes::read(&segment.path)?;
        let lines: Vec<&[u8]> = bytes.lines().collect();
        let need = n - out.len();
        let take = lines.len().min(need);
        let mut chunk: Vec<String> = lines[lines.len() - take..]
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        chunk.append(&mut out);
        out = chunk;
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}

/// Writes the entries with `since <= timestamp < until` to `out`; returns how many. A line that is not
/// a ledger entry is an error naming its segment and line (run `verify` to see why).
pub fn export(
    dir: &Path,
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, LedgerError> {
    let export_err = |e: &dyn std::fmt::Display| LedgerError::Export(e.to_string());
    match format {
        ExportFormat::Jsonl => for_each_entry(dir, since, until, |_, line, _| {
            out.write_all(line)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| export_err(&e))
        }),
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(|e| export_err(&e))?;
            let n = for_each_entry(dir, since, until, |entry, _, segment| {
                w.write_record(csv_row(entry, segment))
                    .map_err(|e| export_err(&e))
            })?;
            w.flush().map_err(|e| export_err(&e))?;
            Ok(n)
        }
    }
}

fn for_each_entry(
    dir: &Path,
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
    mut f: impl FnMut(&LedgerEntry, &[u8], &str) -> Result<(), LedgerError>,
) -> Result<u64, LedgerError> {
    let mut count = 0u64;
    for segment in list_segments(dir)? {
        let bytes = SegmentBytes::read(&segment.path)?;
        let seg_name = segment
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, line) in bytes.lines().enumerate() {
            let entry: LedgerEntry = serde_json::from_slice(line).map_err(|e| {
                LedgerError::Export(format!(
                    "{seg_name} line {}: not a ledger entry: {e}",
                    i + 1
                ))
            })?;
            if since.is_some_and(|s| entry.timestamp < s)
                || until.is_some_and(|u| entry.timestamp >= u)
            {
                continue;
            }
            f(&entry, line, &seg_name)?;
            count += 1;
        }
    }
    Ok(count)
}

fn csv_row(e: &LedgerEntry, segment: &str) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let compliance = e
        .compliance
        .iter()
        .map(|m| {
            let status = serde_json::to_value(m.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{}:{}:{}", m.framework, m.controls.join("|"), status)
        })
        .collect::<Vec<_>>()
        .join(";");
    vec![
        e.seq.to_string(),
        e.timestamp.to_string(),
        e.event_type.as_str().to_owned(),
        opt(&e.domain),
        opt(&e.request_id),
        opt(&e.decision_id),
        opt(&e.actor),
        opt(&e.action),
        opt(&e.resource),
        e.decision
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        opt(&e.rule_id),
        opt(&e.reason),
        opt(&e.policy_version_hash),
        compliance,
        opt(&e.context_digest),
        e.context
            .as_ref()
            .map(|c| serde_json::Value::Object(c.clone()).to_string())
            .unwrap_or_default(),
        opt(&e.key_id),
        opt(&e.signature),
        e.previous_hash.clone(),
        e.entry_hash.clone(),
        segment.to_owned(),
    ]
}
