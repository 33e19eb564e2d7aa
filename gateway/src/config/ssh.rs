//! `[ssh]`: the operator console over SSH (served by [`crate::ssh`] inside the gateway).
//!
//! Off by default: it is turned on from the serial console, with the operators' public
//! keys. Keys only — no password is ever taken over SSH; the console then asks the admin
//! login as on the serial line.

use super::ConfigError;
use super::keys::{Key, Keys, Kind, key};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ssh {
    pub enabled: bool,
    /// Where to listen, as `IP:PORT`.
    pub address: Vec<SocketAddr>,
    /// Public keys in `authorized_keys` form (`ssh-ed25519 AAAA… admin@laptop`), or the
    /// absolute path of a file of such lines, read at each login.
    pub authorized_keys: Vec<String>,
    /// The admin account the console asks for after the key (empty: none, the key alone
    /// logs in).
    pub login: PathBuf,
    /// Connections served at once, logged in or not; more wait to be accepted.
    pub max_connections: usize,
}

impl Keys for Ssh {
    const KEYS: &'static [Key] = &[
        key("enabled", Kind::Bool, "serve the console over SSH"),
        key("address", Kind::List("IP:PORT"), "where to listen"),
        key(
            "authorized_keys",
            Kind::List("KEY|PATH"),
            "public keys (\"ssh-ed25519 AAAA... name\") or files of them",
        ),
        key(
            "login",
            Kind::Str("PATH"),
            "admin account asked after the key (empty: none)",
        ),
        key("max_connections", Kind::Int, "connections served at once"),
    ];
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            enabled: false,
            address: vec![SocketAddr::from(([0, 0, 0, 0], 22))],
            authorized_keys: Vec::new(),
            login: PathBuf::from("/data/admin"),
            max_connections: 8,
        }
    }
}

/// What an `authorized_keys` entry stands for.
pub enum Authorized<'a> {
    Key(&'a str),
    File(&'a str),
}

impl Ssh {
    pub fn entries(&self) -> impl Iterator<Item = Authorized<'_>> {
        self.authorized_keys.iter().map(|entry| {
            let entry = entry.trim();
            match entry.starts_with('/') {
                true => Authorized::File(entry),
                false => Authorized::Key(entry),
            }
        })
    }
}

/// Every entry names its key; keys are parsed here, files are read by the server.
pub fn check(ssh: &Ssh) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut add = |key: String, value: String, problem: &str| {
        errors.push(ConfigError {
            key,
            value,
            problem: problem.into(),
        })
    };
    for (i, entry) in ssh.entries().enumerate() {
        if let Authorized::Key(text) = entry
            && let Err(e) = russh::keys::PublicKey::from_openssh(text)
        {
            add(
                format!("ssh.authorized_keys[{i}]"),
                text.chars().take(40).collect(),
                &format!("not a public key ({e}); write `ssh-ed25519 AAAA… name` or a file path"),
            );
        }
    }
    if ssh.enabled && ssh.address.is_empty() {
        add(
            "ssh.address".into(),
            "[]".into(),
            "give at least one IP:PORT when ssh is enabled",
        );
    }
    if ssh.enabled && ssh.authorized_keys.is_empty() {
        add(
            "ssh.authorized_keys".into(),
            "[]".into(),
            "give at least one key when ssh is enabled: nobody could log in",
        );
    }
    if ssh.max_connections == 0 {
        add(
            "ssh.max_connections".into(),
            "0".into(),
            "must be at least 1",
        );
    }
    if !ssh.login.as_os_str().is_empty() && !ssh.login.is_absolute() {
        add(
            "ssh.login".into(),
            ssh.login.display().to_string(),
            "must be an absolute path (or empty)",
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFtHjHMBHY+fy3GVR3d3AtnKHMq3aDL/2zFk0nK3/Hn admin@laptop";

    #[test]
    fn off_by_default_and_a_bad_key_names_its_entry() {
        assert!(!Ssh::default().enabled);
        let ssh = Ssh {
            enabled: true,
            authorized_keys: vec![
                KEY.into(),
                "/data/ssh/keys".into(),
                "ssh-rsa nonsense".into(),
            ],
            ..Ssh::default()
        };
        let errors = check(&ssh);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "ssh.authorized_keys[2]");
    }

    #[test]
    fn enabled_without_keys_or_addresses_is_refused() {
        let ssh = Ssh {
            enabled: true,
            address: Vec::new(),
            ..Ssh::default()
        };
        let keys: Vec<String> = check(&ssh).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["ssh.address", "ssh.authorized_keys"]);
    }
}
