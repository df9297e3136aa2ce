//! `lexecon keys generate`, `lexecon token verify` (capability tokens) and `lexecon token issue`
//! (identity tokens of the local issuer): clap subcommand enums the binary embeds, and runners that
//! write to any output and return the exit code. Never prints a private key.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use lexecon_keys::{generate_key_file, key_id, write_public_key_file, KeyRing, DEFAULT_KEY_FILE};
use lexecon_token::{parse_jwks, verify_token};

/// `lexecon keys …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 signing key: `token-ed25519.pem` (mode 0600), `token-ed25519.pub.pem` and
    /// `jwks.json` in OUT_DIR. Refuses to overwrite an existing key.
    Generate {
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

/// `lexecon token …`
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum TokenCommand {
    /// Sign an identity token with the local issuer (`identity.local_issuer`), e.g. for an
    /// approver: prints the token alone, for `Authorization: Bearer <token>`.
    Issue {
        /// The actor the token names: act_<type>:<instance>.
        #[arg(long)]
        subject: String,
        /// A role the token carries (repeat for several); each must be in
        /// identity.local_issuer.roles.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime, at most identity.local_issuer.max_ttl.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Configuration file (its data_dir holds the issuer key); without it, the demo's.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Verify a capability token: prints its claims (exit 0) or the exact reason it fails (exit 1).
    Verify {
        token: String,
        /// JWKS file, or an http(s) URL such as http://127.0.0.1:9901/.well-known/jwks.json.
        #[arg(long)]
        jwks: String,
        /// Require this audience (the upstream name).
        #[arg(long)]
        audience: Option<String>,
    },
}

pub fn run_keys(cmd: KeysCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        KeysCommand::Generate { out_dir } => {
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let private = out_dir.join(DEFAULT_KEY_FILE);
            let key = generate_key_file(&private)?;
            let public = out_dir.join("token-ed25519.pub.pem");
            write_public_key_file(&public, &key.verifying_key())?;
            let jwks = out_dir.join("jwks.json");
            let ring = KeyRing::from_keys([key.clone()])?;
            std::fs::write(&jwks, serde_json::to_string_pretty(&ring.jwks())?)
                .with_context(|| format!("writing {}", jwks.display()))?;
            writeln!(out, "kid: {}", key_id(&key.verifying_key()))?;
            writeln!(out, "private key: {}", private.display())?;
            writeln!(out, "public key: {}", public.display())?;
            writeln!(out, "jwks: {}", jwks.display())?;
            Ok(0)
        }
    }
}

pub fn run_token(cmd: TokenCommand, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cmd {
        TokenCommand::Issue {
            subject,
            roles,
            ttl,
            config,
        } => {
            let config = match &config {
                Some(path) => lexecon_config::Config::load(path)?,
                None => crate::demo::demo_config()?,
            };
            let local = config.identity.local_issuer.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no identity.local_issuer: this node signs no identity tokens",
                    config.source
                )
            })?;
            crate::identity::actor_id(&subject, None)
                .map_err(|e| anyhow::anyhow!("--subject: {e}"))?;
            if let Some(role) = roles.iter().find(|r| !local.roles.contains(r)) {
                anyhow::bail!(
                    "--role {role}: the local issuer may grant only {:?} (identity.local_issuer.roles)",
                    local.roles
                );
            }
            if ttl.is_zero() || ttl > local.max_ttl {
                anyhow::bail!(
                    "--ttl {}: must be above 0 and at most {} (identity.local_issuer.max_ttl)",
                    humantime::format_duration(ttl),
                    humantime::format_duration(local.max_ttl)
                );
            }
            let key = crate::identity::local::load_or_generate_key(&config.data_dir)?;
            let token = crate::identity::local::issue(&key, &subject, &roles, ttl)
                .map_err(anyhow::Error::msg)?;
            writeln!(out, "{token}")?;
            Ok(0)
        }
        TokenCommand::Verify {
            token,
            jwks,
            audience,
        } => {
            let text = if jwks.starts_with("http://") || jwks.starts_with("https://") {
                crate::identity::jwks::fetch(&jwks, std::time::Duration::from_secs(5))
                    .map_err(anyhow::Error::msg)?
            } else {
                std::fs::read_to_string(&jwks).with_context(|| format!("reading {jwks}"))?
            };
            let set = parse_jwks(&text)?;
            match verify_token(token.trim(), &set, audience.as_deref()) {
                Ok(claims) => {
                    serde_json::to_writer_pretty(&mut *out, &claims)?;
                    writeln!(out)?;
                    Ok(0)
                }
                Err(e) => {
                    writeln!(out, "invalid token: {e}")?;
                    Ok(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};

    #[derive(Debug, Parser)]
    enum Cli {
        #[command(subcommand)]
        Keys(KeysCommand),
        #[command(subcommand)]
        Token(TokenCommand),
    }

    #[test]
    fn keys_and_token_commands_parse_from_the_command_line() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["x", "keys", "generate", "--out-dir", "/tmp/k"]).unwrap();
        assert!(
            matches!(cli, Cli::Keys(KeysCommand::Generate { out_dir }) if out_dir == std::path::Path::new("/tmp/k"))
        );
        let cli =
            Cli::try_parse_from(["x", "token", "verify", "a.b.c", "--jwks", "j.json"]).unwrap();
        assert!(matches!(
            cli,
            Cli::Token(TokenCommand::Verify { audience: None, .. })
        ));
        assert!(Cli::try_parse_from(["x", "token", "verify", "a.b.c"]).is_err());
    }
}
