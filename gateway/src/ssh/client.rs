//! One SSH connection: public-key authentication against `ssh.authorized_keys`, and a
//! console per session channel ([`super::shell`]). Every login, logout and refused key is
//! logged with the client's address and the key's fingerprint: that is the audit trail.

use super::hostkey::fingerprint;
use super::shell::{self, Shell, Spawn};
use crate::config::ssh::{Authorized, Ssh};
use nix::pty::Winsize;
use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Handle, Msg, PublicKeyOffer, Session};
use russh::server::{Handler, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every connection of one running `[ssh]` configuration shares.
pub struct Shared {
    pub ssh: Ssh,
    pub socket: PathBuf,
    pub appliance: bool,
}

pub struct Client {
    peer: String,
    shared: Arc<Shared>,
    /// The fingerprint of the key that logged in.
    login: Option<String>,
    /// Raised at login; the accept loop's grace timer reads it.
    pub authenticated: Arc<AtomicBool>,
    channels: HashMap<ChannelId, Tty>,
}

/// A session channel: the terminal the client asked for, then its console.
struct Tty {
    term: String,
    size: Winsize,
    shell: Option<Shell>,
}

impl Client {
    pub fn new(peer: Option<SocketAddr>, shared: Arc<Shared>) -> Client {
        Client {
            peer: peer.map_or_else(|| "?".into(), |p| p.to_string()),
            shared,
            login: None,
            authenticated: Arc::new(AtomicBool::new(false)),
            channels: HashMap::new(),
        }
    }

    fn start_shell(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), String> {
        let login = Some(self.shared.ssh.login.as_path()).filter(|p| !p.as_os_str().is_empty());
        if let Some(path) = login
            && !path.exists()
        {
            // The console would run the first-boot wizard: that belongs to the serial line.
            return Err("no admin account yet: set one up on the serial console first".into());
        }
        let tty = self.channels.get_mut(&channel).ok_or("no such channel")?;
        let (shell, child, reaped) = Shell::spawn(Spawn {
            socket: &self.shared.socket,
            login,
            appliance: self.shared.appliance,
            term: &tty.term,
            size: tty.size,
        })
        .map_err(|e| format!("cannot start the console: {e}"))?;
        tokio::spawn(pump(
            shell.master.clone(),
            child,
            reaped,
            session.handle(),
            channel,
        ));
        tty.shell = Some(shell);
        Ok(())
    }
}

/// The console's output to the channel until it exits; then its exit status, and the
/// channel is closed.
async fn pump(
    master: Arc<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    mut child: std::process::Child,
    reaped: Arc<AtomicBool>,
    handle: Handle,
    channel: ChannelId,
) {
    let mut buf = vec![0u8; 4096];
    // Ends at EIO: every process holding the terminal has exited (or been hung up).
    while let Ok(n @ 1..) = shell::read(&master, &mut buf).await {
        if handle.data(channel, buf[..n].to_vec()).await.is_err() {
            break;
        }
    }
    drop(master);
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        reaped.store(true, Ordering::Release);
        status
    })
    .await;
    let code = match status {
        Ok(Ok(status)) => status.code().unwrap_or(1) as u32,
        _ => 1,
    };
    let _ = handle.exit_status_request(channel, code).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// The keys `ssh` lets in: its own entries and the lines of the files it names (read at
/// each login, so editing the file needs no commit).
fn authorized(ssh: &Ssh) -> Vec<PublicKey> {
    let mut keys = Vec::new();
    for entry in ssh.entries() {
        match entry {
            Authorized::Key(text) => keys.extend(PublicKey::from_openssh(text).ok()),
            Authorized::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .filter_map(|l| PublicKey::from_openssh(l).ok()),
                ),
                Err(e) => log::warn!("ssh: authorized keys {path}: {e}"),
            },
        }
    }
    keys
}

/// The authorized entry for `key` (its comment names whose key it is).
fn find(ssh: &Ssh, key: &PublicKey) -> Option<PublicKey> {
    authorized(ssh)
        .into_iter()
        .find(|k| k.key_data() == key.key_data())
}

fn size(cols: u32, rows: u32) -> Winsize {
    let clamp = |v: u32, default: u16| match u16::try_from(v) {
        Ok(0) | Err(_) => default,
        Ok(v) => v,
    };
    Winsize {
        ws_row: clamp(rows, 24),
        ws_col: clamp(cols, 80),
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Handler for Client {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if find(&self.shared.ssh, offer.public_key).is_some() {
            return Ok(Auth::Accept);
        }
        log::warn!(
            "ssh: refused key {} for {user:?} from {}: not in ssh.authorized_keys",
            fingerprint(offer.public_key),
            self.peer
        );
        Ok(Auth::reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let print = fingerprint(key.public_key);
        let Some(entry) = find(&self.shared.ssh, key.public_key) else {
            log::warn!("ssh: refused key {print} for {user:?} from {}", self.peer);
            return Ok(Auth::reject());
        };
        log::info!(
            "ssh: login from {} with key {print} ({}) as {user:?}",
            self.peer,
            entry.comment()
        );
        self.login = Some(print);
        self.authenticated.store(true, Ordering::Release);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(
            channel.id(),
            Tty {
                term: String::new(),
                size: size(80, 24),
                shell: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(tty) if tty.shell.is_none() => {
                tty.term = term.to_string();
                tty.size = size(cols, rows);
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    /// The console always runs on a terminal: without `-t` it gets an 80×24 one.
    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self
            .channels
            .get(&channel)
            .is_none_or(|t| t.shell.is_some())
        {
            return session.channel_failure(channel);
        }
        match self.start_shell(channel, session) {
            Ok(()) => session.channel_success(channel),
            Err(problem) => {
                log::warn!("ssh: console for {}: {problem}", self.peer);
                session.channel_success(channel)?;
                session.data(channel, format!("{problem}\r\n").into_bytes())?;
                session.exit_status_request(channel, 1)?;
                session.eof(channel)?;
                session.close(channel)
            }
        }
    }

    /// Only the console runs here: no commands, no subsystems (sftp), no forwarding.
    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let master = match self.channels.get(&channel).and_then(|t| t.shell.as_ref()) {
            Some(shell) => shell.master.clone(),
            None => return Ok(()),
        };
        if let Err(e) = shell::write_all(&master, data).await {
            log::debug!("ssh: console input: {e}");
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(tty) = self.channels.get_mut(&channel) {
            tty.size = size(cols, rows);
            if let Some(shell) = &tty.shell {
                shell.resize(tty.size);
            }
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(print) = &self.login {
            log::info!("ssh: logout from {} with key {print}", self.peer);
        }
    }
}
