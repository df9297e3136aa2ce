//! `lexecon bundle keygen|build|sign|inspect|verify|push`: the control plane's tools. A bundle is
//! built from a directory holding `config.yaml` and the files it names, signed with a
//! control-plane key, checked the way a sidecar will check it, and pushed to a fleet. The format
//! is `lexecon_config::bundle`'s; the sidecar side is `crate::control`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use lexecon_config::bundle::{BuildOptions, Bundle};
use lexecon_config::file::Config;
use serde_json::json;

/// `lexecon bundle …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum BundleCommand {
    /// Generate a control-plane key: KEY (private, mode 0600) and KEY with .pub (public, what a
    /// sidecar lists in control_plane.trusted_keys).
    Keygen { key: PathBuf },
    /// Build an unsigned bundle from DIR (DIR/config.yaml and every file under DIR).
    Build {
        dir: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// The revision: higher than every bundle this fleet has seen.
        #[arg(long)]
        revision: u64,
        /// Not valid before (RFC 3339).
        #[arg(long)]
        not_before: Option<jiff::Timestamp>,
        /// Not valid from (RFC 3339).
        #[arg(long)]
        expires_at: Option<jiff::Timestamp>,
        /// Let this bundle replace a newer revision (signed with the rest).
        #[arg(long)]
        allow_rollback: bool,
    },
    /// Sign FILE in place with a control-plane key (adds or replaces that key's signature).
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Show a bundle's revision, validity, parts with their hashes, and signers.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle as a sidecar will: signature by a trusted key, validity window, the
    /// configuration and every policy (compiled). Exit 1 with every error and its place.
    Verify {
        file: PathBuf,
        /// A trusted control-plane public key (repeat for several).
        #[arg(long = "trusted", required = true)]
        trusted: Vec<PathBuf>,
    },
    /// Print a push token (for `PUT /admin/v1/bundle` or `POST /admin/v1/bundle/refresh` with
    /// curl): signed with a control-plane key, scope bundle:write, valid for --ttl.
    Token {
        #[arg(long)]
        key: PathBuf,
        /// At most the sidecars' control_plane.push_token_max_ttl (default 5m).
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Push FILE to sidecars' admin listeners concurrently; one row per sidecar, exit 1 if any
    /// failed.
    Push {
        file: PathBuf,
        /// host:port of each admin listener, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// The control-plane key that signs the push token.
        #[arg(long)]
        key: PathBuf,
        /// Pushes in flight at once.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
        /// Per-sidecar timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

pub fn run(cmd: BundleCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        BundleCommand::Keygen { key } => keygen(&key, out),
        BundleCommand::Build {
            dir,
            output,
            revision,
            not_before,
            expires_at,
            allow_rollback,
        } => {
            let options = BuildOptions {
                revision,
                not_before,
                expires_at,
                allow_rollback,
            };
            let mut bundle = Bundle::from_dir(&dir, &options)?;
            let converted = policies_as_json(&mut bundle)?;
            // INVARIANT: a bundle that would not load on a sidecar is never written.
            let check =
                std::env::temp_dir().join(format!("lexecon-build-{}", uuid::Uuid::new_v4()));
            let compiled = compile(&bundle, &check);
            let _ = std::fs::remove_dir_all(&check);
            if let Err(e) = compiled {
                writeln!(out, "{}: {e:#}", dir.display())?;
                return Ok(1);
            }
            if converted > 0 {
                writeln!(
                    out,
                    "{converted} policies stored as JSON (read without a YAML parser)"
                )?;
            }
            std::fs::write(&output, bundle.to_bytes()?)
                .with_context(|| format!("cannot write {}", output.display()))?;
            writeln!(
                out,
                "{}: revision {revision}, {} parts, unsigned (sign it with lexecon bundle sign)",
                output.display(),
                bundle.parts().len()
            )?;
            Ok(0)
        }
        BundleCommand::Sign { file, key } => {
            let mut bundle = read(&file)?;
            let signing = lexecon_keys::read_signing_key(&key)?;
            let kid = lexecon_keys::key_id(&signing.verifying_key());
            bundle.sign(&signing, &kid);
            std::fs::write(&file, bundle.to_bytes()?)
                .with_context(|| format!("cannot write {}", file.display()))?;
            writeln!(out, "{}: signed by {kid}", file.display())?;
            Ok(0)
        }
        BundleCommand::Inspect { file, json } => inspect(&file, json, out),
        BundleCommand::Token { key, ttl } => {
            let signing = lexecon_keys::read_signing_key(&key)?;
            writeln!(out, "{}", crate::control::push::push_token(&signing, ttl)?)?;
            Ok(0)
        }
        BundleCommand::Verify { file, trusted } => verify(&file, &trusted, out),
        BundleCommand::Push {
            file,
            to,
            key,
            parallel,
            timeout,
        } => push(&file, &to, &key, parallel, timeout, out),
    }
}

/// Rewrites each policy file the bundle's configuration names as the JSON of the parsed document
/// (same part name: JSON is YAML, so the file still reads as before), so a sidecar parses it
/// without a YAML parser — most of the cost of loading a large policy. A policy whose JSON does
/// not read back as the same document (same version hash) is left as written. Returns how many
/// were converted.
fn policies_as_json(bundle: &mut Bundle) -> anyhow::Result<usize> {
    let config_part = lexecon_config::bundle::CONFIG_PART;
    let text = bundle
        .parts()
        .get(config_part)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let config = Config::from_yaml(config_part, &text)?;
    let mut converted = 0;
    for path in config.policies.values() {
        let name = path.to_string_lossy().trim_start_matches("./").to_owned();
        let Some(bytes) = bundle.parts().get(&name) else {
            bail!("{config_part}: policies: {name} is not a file of the bundle directory");
        };
        let source = String::from_utf8_lossy(bytes).into_owned();
        let doc = lexecon_config::parse_policy(&name, &source)?;
        let json = serde_json::to_vec(&doc)?;
        let back = lexecon_config::parse_policy(&name, &String::from_utf8_lossy(&json))?;
        if back.policy_version_hash() == doc.policy_version_hash() && json != *bytes {
            bundle.replace_part(&name, json)?;
            converted += 1;
        }
    }
    Ok(converted)
}

fn read(file: &Path) -> anyhow::Result<Bundle> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Bundle::parse(&bytes).with_context(|| file.display().to_string())
}

fn keygen(key: &Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    let signing = lexecon_keys::generate_key_file(key)?;
    let public = key.with_extension("pub");
    lexecon_keys::write_public_key_file(&public, &signing.verifying_key())?;
    writeln!(
        out,
        "{} (private) and {} (public), key id {}",
        key.display(),
        public.display(),
        lexecon_keys::key_id(&signing.verifying_key())
    )?;
    Ok(0)
}

fn inspect(file: &Path, as_json: bool, out: &mut dyn Write) -> anyhow::Result<i32> {
    let bundle = read(file)?;
    let m = bundle.manifest();
    let signers: Vec<&str> = bundle.signatures().iter().map(|s| s.kid.as_str()).collect();
    if as_json {
        let doc = json!({
            "file": file.display().to_string(),
            "hash": bundle.hash(),
            "revision": m.revision,
            "created_at": m.created_at,
            "not_before": m.not_before,
            "expires_at": m.expires_at,
            "allow_rollback": m.allow_rollback,
            "parts": m.parts,
            "signed_by": signers,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(0);
    }
    writeln!(out, "bundle    {}", file.display())?;
    writeln!(out, "hash      {}", bundle.hash())?;
    writeln!(out, "revision  {}", m.revision)?;
    writeln!(out, "created   {}", m.created_at)?;
    let show = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    writeln!(
        out,
        "valid     {} .. {}",
        show(m.not_before),
        show(m.expires_at)
    )?;
    if m.allow_rollback {
        writeln!(out, "rollback  allowed")?;
    }
    if signers.is_empty() {
        writeln!(out, "signed by (unsigned)")?;
    } else {
        writeln!(out, "signed by {}", signers.join(", "))?;
    }
    for (name, hash) in &m.parts {
        writeln!(out, "  {hash}  {name}")?;
    }
    Ok(0)
}

fn verify(file: &Path, trusted: &[PathBuf], out: &mut dyn Write) -> anyhow::Result<i32> {
    let mut keys = std::collections::BTreeMap::new();
    for path in trusted {
        let key = lexecon_keys::read_verifying_key(path)?;
        keys.insert(lexecon_keys::key_id(&key), key);
    }
    let bundle = read(file)?;
    let kid = match bundle.verify(&keys) {
        Ok(kid) => kid.to_owned(),
        Err(e) => {
            writeln!(out, "{}: {e}", file.display())?;
            return Ok(1);
        }
    };
    if let Err(e) = bundle.check_validity(jiff::Timestamp::now()) {
        writeln!(out, "{}: {e}", file.display())?;
        return Ok(1);
    }
    let dir = std::env::temp_dir().join(format!("lexecon-verify-{}", uuid::Uuid::new_v4()));
    let result = compile(&bundle, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(domains) => {
            writeln!(
                out,
                "{}: revision {} signed by {kid}; configuration valid; policies compiled: {}",
                file.display(),
                bundle.manifest().revision,
                if domains.is_empty() {
                    "none".to_owned()
                } else {
                    domains.join(", ")
                }
            )?;
            Ok(0)
        }
        Err(e) => {
            writeln!(out, "{}: {e:#}", file.display())?;
            Ok(1)
        }
    }
}

/// Unpacks into `dir`, merges with a default node configuration and compiles every policy.
fn compile(bundle: &Bundle, dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    bundle.extract_to(dir)?;
    let mut node = Config::from_yaml("<node defaults>", "{}")?;
    node.data_dir = dir.join(".data");
    let (config, _) = crate::control::merge(&node, dir, bundle.manifest().revision)
        .map_err(|r| anyhow::anyhow!(r.reason))?;
    let (registry, docs) = crate::engine::load_policies(&config)?;
    let snapshot = lexecon_policy_cache::PolicySnapshot::build(registry, docs)?;
    let mut domains: Vec<String> = snapshot.policies.keys().cloned().collect();
    domains.sort();
    Ok(domains)
}

fn push(
    file: &Path,
    to: &[String],
    key: &Path,
    parallel: usize,
    timeout: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let signing = lexecon_keys::read_signing_key(key)?;
    if to.is_empty() {
        bail!("--to names no sidecar");
    }
    let token = crate::control::push::push_token(&signing, Duration::from_secs(120))?;
    let rows = crate::control::push::push_fleet(to, &bytes, &token, parallel, timeout);
    let show = |r: Option<u64>| r.map_or_else(|| "-".to_owned(), |r| r.to_string());
    writeln!(
        out,
        "{:<24} {:>8} {:>8} {:>9}  error",
        "sidecar", "before", "after", "took"
    )?;
    let mut failed = 0;
    for row in &rows {
        if row.error.is_some() {
            failed += 1;
        }
        writeln!(
            out,
            "{:<24} {:>8} {:>8} {:>7}ms  {}",
            row.target,
            show(row.before),
            show(row.after),
            row.took.as_millis(),
            row.error.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(
        out,
        "{} of {} sidecars updated",
        rows.len() - failed,
        rows.len()
    )?;
    Ok(i32::from(failed > 0))
}
