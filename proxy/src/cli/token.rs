//! `lexecon keys generate` and `lexecon token verify`: clap subcommand enums the binary embeds, and
//! runners that write to any output and return the exit code. Never prints a private key.

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
