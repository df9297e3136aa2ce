//! `lexecon tools pins list|approve`: reads and writes the pin file of an MCP route's `pin_tools`
//! (lexecon_config::tool_pins). Approving pins the definitions of a saved `tools/list` answer, so a
//! human reviews what the tool server offers before the proxy lets the agent see or call it. Never
//! pins anything it was not shown, and never leaves a half-written pin file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use lexecon_config::tool_pins::{listed_tools, load_pins, save_pins, tool_digest, ToolPin};

/// `lexecon tools …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum ToolsCommand {
    /// Manage the pin file of an MCP route with `pin_tools`.
    #[command(subcommand)]
    Pins(PinsCommand),
}

/// `lexecon tools pins …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum PinsCommand {
    /// One line per pinned tool: name, digest prefix, when and by whom it was approved.
    List {
        /// The pin file (pin_tools.file of the route).
        #[arg(long)]
        file: PathBuf,
    },
    /// Pin the tools of a saved tools/list answer (a JSON-RPC response, its `result`, or the
    /// `tools` list), all of them or those named with --tool. Exit 1 if a named tool is missing.
    Approve {
        #[arg(long)]
        file: PathBuf,
        /// The saved tools/list answer (JSON).
        #[arg(long = "from", value_name = "LIST_JSON")]
        from: PathBuf,
        /// Pin only this tool (repeat for several).
        #[arg(long = "tool", value_name = "NAME")]
        tools: Vec<String>,
        /// Recorded as approved_by.
        #[arg(long)]
        by: Option<String>,
    },
}

pub fn run(cmd: ToolsCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        ToolsCommand::Pins(PinsCommand::List { file }) => list(&file, out),
        ToolsCommand::Pins(PinsCommand::Approve {
            file,
            from,
            tools,
            by,
        }) => approve(&file, &from, &tools, by, out),
    }
}

fn list(file: &std::path::Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    let Some(pins) = load_pins(file)? else {
        bail!("{}: no such pin file", file.display());
    };
    writeln!(
        out,
        "{:<32} {:<14} {:<26} APPROVED BY",
        "TOOL", "SHA256", "APPROVED AT"
    )?;
    for (name, pin) in &pins {
        writeln!(
            out,
            "{:<32} {:<14} {:<26} {}",
            name,
            pin.sha256.get(..12).unwrap_or(&pin.sha256),
            pin.approved_at,
            pin.approved_by.as_deref().unwrap_or("-")
        )?;
    }
    Ok(0)
}

fn approve(
    file: &std::path::Path,
    from: &std::path::Path,
    only: &[String],
    by: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    let document: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", from.display()))?;
    let Some(tools) = listed_tools(&document) else {
        bail!(
            "{}: not a tools/list answer (expected {{result: {{tools: [...]}}}}, {{tools: [...]}} or a list)",
            from.display()
        );
    };
    let mut pins = load_pins(file)?.unwrap_or_default();
    let now = jiff::Timestamp::now().to_string();
    let mut pinned = Vec::new();
    for tool in tools {
        let Some((name, digest)) = tool_digest(tool) else {
            writeln!(out, "skipped: a listed tool without a string name")?;
            continue;
        };
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        let unchanged = pins.get(name).is_some_and(|p| p.sha256 == digest);
        if !unchanged {
            pins.insert(
                name.to_owned(),
                ToolPin {
                    sha256: digest.clone(),
                    approved_at: now.clone(),
                    approved_by: by.clone(),
                },
            );
        }
        pinned.push((name.to_owned(), digest, unchanged));
    }
    let missing: Vec<&String> = only
        .iter()
        .filter(|n| !pinned.iter().any(|(p, _, _)| p == *n))
        .collect();
    if !missing.is_empty() {
        writeln!(
            out,
            "not in {}: {}; nothing written",
            from.display(),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        return Ok(1);
    }
    save_pins(file, &pins)?;
    for (name, digest, unchanged) in &pinned {
        let what = if *unchanged {
            "already pinned"
        } else {
            "pinned"
        };
        writeln!(out, "{what}: {name} {}", digest.get(..12).unwrap_or(digest))?;
    }
    writeln!(out, "{} tool(s) in {}", pins.len(), file.display())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"search","description":"Search the docs","inputSchema":{"type":"object"}},
        {"name":"send_email","description":"Send an email","inputSchema":{"type":"object"}}]}}"#;

    fn run_cmd(cmd: PinsCommand) -> (i32, String) {
        let mut out = Vec::new();
        let code = run(ToolsCommand::Pins(cmd), &mut out).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn approve_pins_named_tools_of_a_saved_list_and_list_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("list.json");
        std::fs::write(&from, LIST).unwrap();
        let file = dir.path().join("pins.json");
        let (code, text) = run_cmd(PinsCommand::Approve {
            file: file.clone(),
            from: from.clone(),
            tools: vec!["search".into()],
            by: Some("alice".into()),
        });
        assert_eq!(code, 0, "{text}");
        assert!(text.starts_with("pinned: search "), "{text}");
        let pins = load_pins(&file).unwrap().unwrap();
        assert_eq!(pins.keys().collect::<Vec<_>>(), ["search"]);
        let value: serde_json::Value = serde_json::from_str(LIST).unwrap();
        let expected = tool_digest(&value["result"]["tools"][0]).unwrap().1;
        assert_eq!(pins["search"].sha256, expected);
        assert_eq!(pins["search"].approved_by.as_deref(), Some("alice"));

        let (code, text) = run_cmd(PinsCommand::List { file: file.clone() });
        assert_eq!(code, 0);
        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("search "), "{text}");
        assert!(
            line.contains(&expected[..12]) && line.ends_with("alice"),
            "{line}"
        );

        // All tools of the `result` alone; search is unchanged.
        std::fs::write(&from, serde_json::to_string(&value["result"]).unwrap()).unwrap();
        let (code, text) = run_cmd(PinsCommand::Approve {
            file: file.clone(),
            from,
            tools: vec![],
            by: None,
        });
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("already pinned: search") && text.contains("pinned: send_email"));
        assert_eq!(load_pins(&file).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn approve_of_a_missing_tool_fails_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("list.json");
        std::fs::write(&from, LIST).unwrap();
        let file = dir.path().join("pins.json");
        let (code, text) = run_cmd(PinsCommand::Approve {
            file: file.clone(),
            from: from.clone(),
            tools: vec!["search".into(), "delete_file".into()],
            by: None,
        });
        assert_eq!(code, 1);
        assert!(text.contains("delete_file; nothing written"), "{text}");
        assert!(!file.exists());
        std::fs::write(&from, r#"{"jsonrpc":"2.0","id":1,"error":{}}"#).unwrap();
        let mut out = Vec::new();
        let err = run(
            ToolsCommand::Pins(PinsCommand::Approve {
                file: file.clone(),
                from,
                tools: vec![],
                by: None,
            }),
            &mut out,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a tools/list answer"), "{err}");
        assert!(run(ToolsCommand::Pins(PinsCommand::List { file }), &mut out).is_err());
    }
}
