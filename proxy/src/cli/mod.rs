//! The `lexecon` command line: parsing (clap) and one function per subcommand. Each prints its
//! result to stdout and returns the process exit code; errors surface as one clear line.

pub mod bundle;
pub mod ledger;
pub mod token;
pub mod tools;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use lexecon_domains::{DomainConfig, DomainRegistry};

/// Lexecon: a policy enforcement point for AI agents, finance and healthcare APIs.
#[derive(Debug, Parser)]
#[command(name = "lexecon", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the enforcement proxy (with no --config: the built-in demo with an embedded upstream).
    Serve(ServeArgs),
    /// Write a starter configuration and policy for a domain.
    Init(InitArgs),
    /// List domains or show one domain's types, frameworks and templates.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Validate or instantiate policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Decide one request against a policy, printing the decision JSON with its explanation.
    Decide(DecideArgs),
    /// Verify, tail or export the audit ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Manage capability-token signing keys.
    #[command(subcommand)]
    Keys(token::KeysCommand),
    /// Verify capability tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// MCP tool pinning: list and approve the pinned tool definitions of a pin file.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Control plane: build, sign, inspect, verify and push policy bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (YAML). Without it, the built-in demo configuration runs.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long)]
    pub domain: String,
    /// Directory to write into (created if missing).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// One line per domain.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A domain's types, frameworks and templates.
    Info {
        domain: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file; exit 1 listing every error with its place.
    Validate {
        #[arg(long)]
        domain: String,
        file: PathBuf,
    },
    /// Print a policy that enables a template (parameters default unless given as --param k=v).
    Load {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        template: String,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Output format.
        #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
        format: String,
    },
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    #[arg(long)]
    pub domain: String,
    /// Policy file (YAML, JSON or Lexecon 1.x).
    #[arg(long)]
    pub policy: PathBuf,
    /// Request JSON: {request_id?, actor, action, resource?, context?}.
    #[arg(long)]
    pub request: PathBuf,
    /// Decision time (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
}

/// Runs one parsed command; returns the exit code.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => crate::run::serve_command(args.config.as_deref()),
        Command::Init(args) => init(&args, out),
        Command::Domains(cmd) => domains(cmd, out),
        Command::Policy(cmd) => policy(cmd, out),
        Command::Decide(args) => decide(&args, out),
        Command::Ledger(cmd) => ledger::run(cmd, out),
        Command::Keys(cmd) => token::run_keys(cmd, out),
        Command::Token(cmd) => token::run_token(cmd, out),
        Command::Tools(cmd) => tools::run(cmd, out),
        Command::Bundle(cmd) => bundle::run(cmd, out),
    }
}

fn registry() -> anyhow::Result<DomainRegistry> {
    DomainRegistry::builtin().map_err(|e| anyhow!("built-in domains failed to load: {e}"))
}

fn domain_config<'r>(
    registry: &'r DomainRegistry,
    domain: &str,
) -> anyhow::Result<&'r DomainConfig> {
    match registry.get(domain) {
        Some(plugin) => Ok(plugin.config()),
        None => {
            let known: Vec<&str> = registry.domains().map(|d| d.as_str()).collect();
            bail!(
                "unknown domain {domain:?}; known domains: {}",
                known.join(", ")
            )
        }
    }
}

fn domains(cmd: DomainsCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    let registry = registry()?;
    match cmd {
        DomainsCommand::List { json } => {
            if json {
                let list: Vec<serde_json::Value> = registry
                    .domains()
                    .filter_map(|d| registry.get(d.as_str()))
                    .map(|p| {
                        let c = p.config();
                        serde_json::json!({
                            "domain": c.domain,
                            "display_name": c.display_name,
                            "description": c.description,
                            "compliance_frameworks": c.compliance_frameworks,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(out, "{:<14} {:<28} FRAMEWORKS", "DOMAIN", "NAME")?;
                for id in registry.domains() {
                    if let Some(p) = registry.get(id.as_str()) {
                        let c = p.config();
                        writeln!(
                            out,
                            "{:<14} {:<28} {}",
                            c.domain,
                            c.display_name,
                            c.compliance_frameworks.join(", ")
                        )?;
                    }
                }
            }
        }
        DomainsCommand::Info { domain, json } => {
            let c = domain_config(&registry, &domain)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(c)?)?;
            } else {
                print_domain(c, out)?;
            }
        }
    }
    Ok(0)
}

fn print_domain(c: &DomainConfig, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{} ({})", c.display_name, c.domain)?;
    if !c.description.is_empty() {
        writeln!(out, "{}", c.description)?;
    }
    writeln!(out, "\nACTOR TYPES")?;
    for t in &c.actor_types {
        writeln!(
            out,
            "  {:<32} {:<8} {}",
            t.type_id,
            format!("{:?}", t.category).to_lowercase(),
            t.label
        )?;
    }
    writeln!(
        out,
        "\nACTION TYPES                       RISK  APPROVAL  CATEGORY"
    )?;
    for t in &c.action_types {
        let approval = if t.requires_human_approval {
            "yes"
        } else {
            "no"
        };
        let category = format!("{:?}", t.category).to_lowercase();
        writeln!(
            out,
            "  {:<32} {:<5} {:<9} {}",
            t.type_id,
            t.risk_level.get(),
            approval,
            category
        )?;
    }
    writeln!(out, "\nRESOURCE TYPES                     SENSITIVITY")?;
    for t in &c.resource_types {
        writeln!(
            out,
            "  {:<32} {}",
            t.type_id,
            format!("{:?}", t.sensitivity).to_lowercase()
        )?;
    }
    writeln!(
        out,
        "\nCOMPLIANCE FRAMEWORKS\n  {}",
        c.compliance_frameworks.join(", ")
    )?;
    writeln!(out, "\nPOLICY TEMPLATES")?;
    for t in &c.policy_templates {
        writeln!(out, "  {:<32} {}", t.name, t.description)?;
        for (name, p) in &t.params {
            writeln!(out, "      {name} = {} ({})", p.default, p.description)?;
        }
    }
    Ok(())
}

fn policy(cmd: PolicyCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    let registry = registry()?;
    match cmd {
        PolicyCommand::Validate { domain, file } => {
            let config = domain_config(&registry, &domain)?;
            match lexecon_config::load_policy_file(&file, Some(config)) {
                Ok(doc) => {
                    writeln!(
                        out,
                        "{}: valid {} policy {:?} ({} rules, {} templates), version {}",
                        file.display(),
                        doc.domain,
                        doc.id,
                        doc.rules.len(),
                        doc.templates.len(),
                        doc.policy_version_hash()
                    )?;
                    Ok(0)
                }
                Err(e) => {
                    writeln!(out, "{e}")?;
                    Ok(1)
                }
            }
        }
        PolicyCommand::Load {
            domain,
            template,
            params,
            format,
        } => {
            let config = domain_config(&registry, &domain)?;
            let mut map = serde_json::Map::new();
            for p in params {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--param {p:?}: expected NAME=VALUE"))?;
                let value = serde_json::from_str(v)
                    .unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
                map.insert(k.to_string(), value);
            }
            let doc = lexecon_config::instantiate_template(config, &template, map)?;
            let text = if format == "json" {
                serde_json::to_string_pretty(&doc)?
            } else {
                serde_norway::to_string(&doc)?
            };
            writeln!(out, "{}", text.trim_end())?;
            Ok(0)
        }
    }
}

fn decide(args: &DecideArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let registry = registry()?;
    let config = domain_config(&registry, &args.domain)?;
    let doc = lexecon_config::load_policy_file(&args.policy, Some(config))?;
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("cannot read {}", args.request.display()))?;
    let mut input: lexecon_policy_cache::DecisionInput = serde_json::from_str::<RequestFile>(&text)
        .map_err(|e| anyhow!("{}: {e}", args.request.display()))?
        .into_input(&args.domain);
    if let Some(at) = &args.at {
        input.at = Some(
            at.parse()
                .map_err(|e| anyhow!("--at {at:?}: expected an RFC 3339 time: {e}"))?,
        );
    }
    let snapshot = lexecon_policy_cache::PolicySnapshot::build(registry, vec![doc])?;
    let store = std::sync::Arc::new(lexecon_policy_cache::PolicyStore::new(snapshot));
    let service = lexecon_policy_cache::DecisionService::new(
        store,
        lexecon_policy_cache::ServiceConfig::default(),
    );
    let decision = service.decide(input)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&decision)?)?;
    Ok(0)
}

/// The request file of `lexecon decide`: the decision API's body (the domain comes from --domain).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    #[serde(default)]
    request_id: Option<String>,
    actor: String,
    action: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    context: serde_json::Map<String, serde_json::Value>,
}

impl RequestFile {
    fn into_input(self, domain: &str) -> lexecon_policy_cache::DecisionInput {
        lexecon_policy_cache::DecisionInput {
            request_id: self.request_id,
            domain: domain.to_string(),
            actor: self.actor,
            action: self.action,
            resource: self.resource,
            context: self.context,
            at: None,
            provenance: Default::default(),
        }
    }
}

fn init(args: &InitArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let registry = registry()?;
    let config = domain_config(&registry, &args.domain)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir.join("policies"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let policy_path = dir.join("policies").join(format!("{}.yaml", args.domain));
    let config_path = dir.join("lexecon.yaml");
    for p in [&policy_path, &config_path] {
        if p.exists() {
            bail!("{} already exists; not overwriting", p.display());
        }
    }
    let policy = starter_policy(config)?;
    std::fs::write(&policy_path, policy)
        .with_context(|| format!("cannot write {}", policy_path.display()))?;
    std::fs::write(&config_path, starter_config(&args.domain))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    writeln!(
        out,
        "wrote {}\nwrote {}",
        config_path.display(),
        policy_path.display()
    )?;
    writeln!(
        out,
        "next: lexecon policy validate --domain {} {}",
        args.domain,
        policy_path.display()
    )?;
    Ok(0)
}

/// The starter policy: the shipped example for ai, finance and healthcare; for other domains, the
/// domain's first template instantiated with its defaults.
fn starter_policy(config: &DomainConfig) -> anyhow::Result<String> {
    if let Some(text) = lexecon_config::examples::example_policy(config.domain.as_str()) {
        return Ok(text.to_string());
    }
    let template = config
        .policy_templates
        .first()
        .ok_or_else(|| anyhow!("domain {} has no template to start from", config.domain))?;
    let doc = lexecon_config::instantiate_template(config, &template.name, serde_json::Map::new())?;
    Ok(serde_norway::to_string(&doc)?)
}

/// A starter configuration: one route in front of an application on 127.0.0.1:7000.
fn starter_config(domain: &str) -> String {
    let classifier = match domain {
        "ai" => "{kind: mcp, tools: {\"delete_*\": axn_delete_data, \"read_*\": axn_read_data}}",
        "healthcare" => "{kind: fhir, base_path: /fhir}",
        _ => "{kind: none, action: axn_http_request}",
    };
    let prefix = match domain {
        "ai" => "/mcp",
        "healthcare" => "/fhir",
        _ => "/",
    };
    format!(
        "# Lexecon starter configuration for the {domain} domain. Run: lexecon serve --config lexecon.yaml\n\
node_id: {domain}-sidecar\n\
data_dir: lexecon-data\n\
listeners: {{proxy: 127.0.0.1:8080, admin: 127.0.0.1:9901}}\n\
upstreams:\n  app: {{addrs: [\"127.0.0.1:7000\"], connect_timeout: 1s, read_timeout: 30s}}\n\
identity:\n  trusted_actor_header: x-agent-id   # loopback only; configure identity.jwt for real callers\n\
routes:\n  - name: {domain}\n    match: {{path_prefix: {prefix}}}\n    domain: {domain}\n    classifier: {classifier}\n    upstream: app\n    rate_limit: {{per_actor: 50/s, burst: 100}}\n\
policies:\n  {domain}: policies/{domain}.yaml\n\
ledger: {{durability: async}}\n"
    )
}
