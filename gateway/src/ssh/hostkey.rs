//! The SSH host key: `data_dir/ssh/host_ed25519` (OpenSSH format, mode 0600), generated on
//! the first start and kept, so clients' known_hosts stay true across restarts and
//! firmware updates.

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The host key at `path`, generated there when there is none yet; `true` when it was.
pub fn load_or_generate(path: &Path) -> Result<(PrivateKey, bool), String> {
    let shown = path.display();
    match fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text)
            .map(|key| (key, false))
            .map_err(|e| format!("{shown}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(path).map(|key| (key, true)),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// `SHA256:…`, as `ssh-keygen -l` and the client's first-connection question print it.
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn generate(path: &Path) -> Result<PrivateKey, String> {
    let shown = path.display();
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "no randomness for the SSH host key".to_string())?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("{shown}: {e}"))?;
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Written whole under another name and renamed: a power cut leaves the old state
    // (no key, so a new one next time), never half a key.
    let partial = path.with_extension("new");
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&partial, path)
    };
    write().map_err(|e| format!("{shown}: {e}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_generated_once_with_mode_0600_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssh").join("host_ed25519");
        let (first, generated) = load_or_generate(&path).unwrap();
        assert!(generated);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, generated) = load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(
            fingerprint(first.public_key()),
            fingerprint(again.public_key())
        );
        assert!(fingerprint(first.public_key()).starts_with("SHA256:"));
    }
}
