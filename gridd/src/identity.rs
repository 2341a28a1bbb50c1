//! A grid is its Ed25519 key.
//!
//! The key is created on first start in `STATE/identity.key` (PKCS#8 PEM,
//! mode 0600, so `openssl pkey -in identity.key -pubout` reads it) and
//! reused after. The public key, in hex, is the grid's name among peers.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

/// This grid's identity.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// Loads `path`, or creates it with a new key if it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Identity> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Identity::load(path, &pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Identity::create(path),
            Err(e) => {
                Err(e).with_context(|| format!("{}: cannot read identity key", path.display()))
            }
        }
    }

    fn load(path: &Path, pem: &str) -> anyhow::Result<Identity> {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{}: identity key is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 PKCS#8 key: {e}", path.display()))?;
        Ok(Identity { key })
    }

    fn create(path: &Path) -> anyhow::Result<Identity> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        let key = SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("cannot encode key: {e}"))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("{}: cannot create identity key", path.display()))?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        Ok(Identity { key })
    }

    /// The public key in hex: how peers and `/status` name this grid.
    pub fn public_hex(&self) -> String {
        self.key
            .verifying_key()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The signing key, for the transports that authenticate with it.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        let a = Identity::load_or_create(&path).expect("create");
        let b = Identity::load_or_create(&path).expect("load");
        assert_eq!(a.public_hex(), b.public_hex());
        assert_eq!(a.public_hex().len(), 64);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        Identity::load_or_create(&path).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Identity::load_or_create(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("readable by others"), "{err}");
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("open");
        f.write_all(b"not a key").expect("write");
        let err = Identity::load_or_create(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not an Ed25519 PKCS#8 key"), "{err}");
    }
}
