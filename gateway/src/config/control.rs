//! `[control]`: who may use the control socket (`edgemx queue …`, the console) besides root.
//!
//! Owns the key and its check. A group name is looked up in `/etc/group` directly, not
//! through NSS (the static binary must not load NSS modules); a number is taken as a gid,
//! which is what the appliance, without a group database, needs.

use super::ConfigError;
use super::keys::{Key, Keys, Kind, key};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Members of this group (primary or supplementary) may use the control socket; the
    /// socket is then mode 0660 and owned by the group. Absent: root only (mode 0600).
    #[serde(default)]
    pub group: Option<String>,
    /// Resolved from `group` during validation.
    #[serde(skip)]
    pub gid: Option<u32>,
}

impl Keys for Control {
    const KEYS: &'static [Key] = &[key(
        "group",
        Kind::Str("GROUP|GID"),
        "members may use the control socket (absent: root only)",
    )];
}

pub fn check(control: &mut Control) -> Vec<ConfigError> {
    let Some(group) = &control.group else {
        return Vec::new();
    };
    let database = std::fs::read_to_string("/etc/group").unwrap_or_default();
    match group_id(group, &database) {
        Some(gid) => {
            control.gid = Some(gid);
            Vec::new()
        }
        None => vec![ConfigError {
            key: "control.group".into(),
            value: format!("{group:?}"),
            problem: "no such group in /etc/group (give a name or a numeric gid)".into(),
        }],
    }
}

/// The gid of `group` (a number, or a name in `database`, the text of `/etc/group`).
pub fn group_id(group: &str, database: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    database.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let gid = fields.nth(1)?;
        (name == group).then(|| gid.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_numbers_or_names_in_the_database() {
        let db = "root:x:0:\nadm:x:4:syslog\nmailadm:x:1207:alice,bob\n";
        assert_eq!(group_id("1207", db), Some(1207));
        assert_eq!(group_id("mailadm", db), Some(1207));
        assert_eq!(group_id("adm", db), Some(4));
        assert_eq!(group_id("nobody-here", db), None);
        assert_eq!(group_id("mail", db), None);
    }
}
