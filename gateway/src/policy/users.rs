//! The SMTP AUTH users file: one `name:hash` line per user (hashes from
//! [`crate::password`]), `#` comments. Re-read when it changes, so `edgemx user add` takes
//! effect without a restart.
//!
//! Checking a password costs a slow hash (about 0.2 s): callers run [`Users::verify`] on a
//! blocking thread, never on the async workers.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

pub struct Users {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// Inode, modification time and length of the file last read; `None`: never read or
    /// absent. The inode catches a replacement (`edgemx user add` renames a new file in)
    /// within the file system's timestamp granularity.
    stamp: Option<(u64, SystemTime, u64)>,
    users: HashMap<String, String>,
}

impl Users {
    pub fn new(path: PathBuf) -> Users {
        Users {
            path,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when `name` exists and `password` matches. Unknown users cost the same hash
    /// as known ones, so timing does not tell which names exist. Blocking.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let stored = self.lookup(name);
        let hash = stored.as_deref().unwrap_or_else(|| dummy_hash());
        crate::password::verify(password, hash) && stored.is_some()
    }

    /// Whether `name` has an entry (for `test route … user NAME`; says nothing of its
    /// password).
    pub fn exists(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.ino(), m.modified().ok()?, m.len())));
        if stamp != loaded.stamp {
            loaded.users = match std::fs::read_to_string(&self.path) {
                Ok(text) => parse(&text, &self.path),
                Err(e) => {
                    if stamp.is_some() {
                        log::warn!("users file {}: {e}", self.path.display());
                    }
                    HashMap::new()
                }
            };
            loaded.stamp = stamp;
        }
        loaded.users.get(name).cloned()
    }
}

/// Valid user names: what fits on one `name:hash` line and in logs.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.contains(':')
        && name.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// Sets (`Some(hash)`) or removes (`None`) one user, rewriting the file atomically with
/// mode 0600. Returns whether the user existed before.
pub fn set(path: &Path, name: &str, hash: Option<&str>) -> std::io::Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut existed = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.split_once(':').is_some_and(|(n, _)| n.trim() == name) {
            existed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(hash) = hash {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(out.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(existed)
}

fn parse(text: &str, path: &Path) -> HashMap<String, String> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((name, hash)) if valid_name(name.trim()) && hash.starts_with('$') => {
                users.insert(name.trim().to_string(), hash.trim().to_string());
            }
            _ => log::warn!(
                "users file {} line {}: not `name:$pbkdf2-sha256$…`; ignored",
                path.display(),
                i + 1
            ),
        }
    }
    users
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crate::password::hash("edgemx: no such user"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_replaced_removed_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let users = Users::new(path.clone());
        assert!(!users.verify("app", "secret"), "no file: nobody");
        let hash = crate::password::hash_with("secret", 1000);
        assert!(!set(&path, "app", Some(&hash)).unwrap());
        assert!(users.verify("app", "secret"));
        assert!(!users.verify("app", "wrong"));
        assert!(!users.verify("other", "secret"));
        let hash2 = crate::password::hash_with("new", 1000);
        assert!(set(&path, "app", Some(&hash2)).unwrap());
        std::fs::write(
            &path,
            format!(
                "{}# comment\nbroken line\n",
                std::fs::read_to_string(&path).unwrap()
            ),
        )
        .unwrap();
        assert!(users.verify("app", "new"), "reloaded after the change");
        assert!(set(&path, "app", None).unwrap());
        assert!(!users.verify("app", "new"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn names_fit_on_one_line() {
        assert!(valid_name("relay@example.com"));
        assert!(!valid_name("a:b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
    }
}
