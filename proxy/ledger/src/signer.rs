//! The key that signs checkpoints: [`CheckpointSigner`], an Ed25519 key with its id. It signs only
//! what the writer hands it ([`crate::checkpoint_message`]) and never leaves its key in a `Debug`
//! output.

use ed25519_dalek::{Signature, Signer as _, SigningKey};

/// The key that signs checkpoints, with its id (see [`lexecon_keys::key_id`]).
#[derive(Clone)]
pub struct CheckpointSigner {
    key_id: String,
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> Self {
        CheckpointSigner {
            key_id: lexecon_keys::key_id(&key.verifying_key()),
            key,
        }
    }

    /// The key that signs new tokens signs checkpoints too: one key, one id, one JWKS.
    pub fn of(keys: &lexecon_keys::KeyRing) -> Self {
        Self::new(keys.signer().signing_key().clone())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signature of a checkpoint's message.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}
