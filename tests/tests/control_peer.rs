//! The control socket checks who is calling (`SO_PEERCRED`), not only the socket file's
//! mode: root and members of `control.group` are served, anyone else is refused even when
//! the file was made reachable by mistake. The refused client is the real CLI run as
//! `nobody` (the tests run as root).

use edgemx_tests::{FakeBackend, Gateway, control};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

const NOBODY: u32 = 65534;

/// `edgemx queue list` as uid/gid `nobody` against `gw`; its exit status and stderr.
async fn list_as_nobody(gw: &Gateway) -> (bool, String) {
    let dir = gw.dir.path().to_path_buf();
    let config = dir.join("edgemx.toml");
    std::fs::write(&config, &gw.config.text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A copy nobody can reach: the checkout (and its target/) may sit under a 0700
    // directory, as in a clone made in `mktemp -d`.
    // A hard link writes nothing; a copy (another file system) may meet ETXTBSY while a
    // concurrently forked test process still holds its write descriptor: try again then.
    let bin = dir.join("edgemx-as-nobody");
    if std::fs::hard_link(edgemx_tests::gateway::binary(), &bin).is_err() {
        std::fs::copy(edgemx_tests::gateway::binary(), &bin).unwrap();
    }
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let mut tries = 0;
        loop {
            let run = std::process::Command::new(&bin)
                .args(["queue", "list", "--config"])
                .arg(&config)
                .uid(NOBODY)
                .gid(NOBODY)
                .output();
            match run {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                run => break run.expect("run edgemx as nobody"),
            }
        }
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The data directory traversable by everyone (tempdirs are 0700).
fn open_data_dir(gw: &Gateway) {
    std::fs::set_permissions(gw.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_root_or_in_the_group_is_refused() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(backend.addr(), "").await;
    control::ready(&gw, Duration::from_secs(30)).await;
    open_data_dir(&gw);
    let socket = gw.config.control_socket();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A mode mistake (or a socket passed on): the file no longer keeps anyone out.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, stderr) = list_as_nobody(&gw).await;
    assert!(!ok, "nobody was served by the control socket");
    assert!(stderr.contains("permission denied: uid 65534"), "{stderr}");
    // Root still is.
    assert!(control::queued(&gw).await.is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_the_control_group_are_served() {
    let backend = FakeBackend::start().await;
    let gw = Gateway::start(
        backend.addr(),
        &format!("[control]\ngroup = \"{NOBODY}\"\n"),
    )
    .await;
    control::ready(&gw, Duration::from_secs(30)).await;
    open_data_dir(&gw);
    let meta = std::fs::metadata(gw.config.control_socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), NOBODY);
    let (ok, stderr) = list_as_nobody(&gw).await;
    assert!(ok, "a member of control.group was refused: {stderr}");
    gw.stop().await;
}
