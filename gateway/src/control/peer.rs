//! Who is on the other end of the control socket: `SO_PEERCRED` checked against root, our
//! own user and `control.group` (primary or supplementary group of the peer process).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("permission denied: uid {uid} (pid {pid}) is not root{group}")]
    NotAllowed { uid: u32, pid: i32, group: String },
    #[error("permission denied: the peer's credentials cannot be read: {0}")]
    Unknown(std::io::Error),
}

/// Mode 0600, or 0660 and group `gid`, on the socket file.
pub fn restrict(path: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Root, the gateway's own user, or a member of group `gid`.
pub fn check(stream: &UnixStream, gid: Option<u32>) -> Result<(), Refusal> {
    let cred = stream.peer_cred().map_err(Refusal::Unknown)?;
    let pid = cred.pid().unwrap_or(0);
    let groups = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        supplementary(&status)
    };
    if allowed(
        cred.uid(),
        cred.gid(),
        nix::unistd::geteuid().as_raw(),
        gid,
        groups,
    ) {
        return Ok(());
    }
    Err(Refusal::NotAllowed {
        uid: cred.uid(),
        pid,
        group: gid.map_or(String::new(), |g| format!(" or in group {g}")),
    })
}

/// The decision, apart from the system calls; `groups` is asked only when needed.
fn allowed(
    uid: u32,
    primary: u32,
    ours: u32,
    group: Option<u32>,
    groups: impl FnOnce() -> Vec<u32>,
) -> bool {
    if uid == 0 || uid == ours {
        return true;
    }
    match group {
        Some(g) => primary == g || groups().contains(&g),
        None => false,
    }
}

/// The `Groups:` line of `/proc/PID/status`.
fn supplementary(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ourselves_and_the_group_are_allowed_nobody_else() {
        let none = || Vec::new();
        assert!(allowed(0, 0, 0, None, none));
        assert!(allowed(1000, 1000, 1000, None, none));
        assert!(!allowed(65534, 65534, 0, None, none));
        assert!(!allowed(65534, 65534, 0, Some(1207), none));
        assert!(allowed(65534, 1207, 0, Some(1207), none));
        assert!(allowed(65534, 65534, 0, Some(1207), || vec![4, 1207]));
    }

    #[test]
    fn supplementary_groups_come_from_proc_status() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 1207 \n";
        assert_eq!(supplementary(status), vec![4, 24, 1207]);
        assert_eq!(supplementary("Name:\tsh\n"), Vec::<u32>::new());
    }
}
