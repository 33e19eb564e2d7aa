//! `edgemx user add|delete|hash`: the SMTP AUTH users file and password hashes.
//!
//! The password is read from standard input: typed twice without echo on a terminal, or
//! one line from a pipe (for scripts and the serial console's provisioning).

use crate::config::Config;
use crate::policy::users;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum UserAction {
    /// Add a user (or replace its password) in the users file; the password is read from stdin.
    Add { name: String },
    /// Remove a user from the users file.
    Delete { name: String },
    /// Print a password hash for a users file line `name:HASH`, without writing anything.
    Hash,
}

/// EX_DATAERR: bad input on stdin or a bad user name.
const EXIT_DATAERR: u8 = 65;
const EXIT_CANTCREAT: u8 = 73;

pub fn run(action: UserAction, config: Option<Config>) -> ExitCode {
    let path = config.as_ref().map(|c| c.relay.users_path(&c.data_dir));
    match (action, path) {
        (UserAction::Hash, _) => match read_password() {
            Ok(password) => {
                println!("{}", crate::password::hash(&password));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, EXIT_DATAERR),
        },
        (UserAction::Add { name }, Some(path)) => {
            if !users::valid_name(&name) {
                return fail(
                    "a user name has no spaces, colons or control characters",
                    EXIT_DATAERR,
                );
            }
            let password = match read_password() {
                Ok(password) => password,
                Err(e) => return fail(&e, EXIT_DATAERR),
            };
            let hash = crate::password::hash(&password);
            if let Err(e) = create_parent(&path) {
                return fail(&format!("{}: {e}", path.display()), EXIT_CANTCREAT);
            }
            match users::set(&path, &name, Some(&hash)) {
                Ok(existed) => {
                    let what = if existed { "updated" } else { "added" };
                    println!("{what} user {name} in {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("{}: {e}", path.display()), EXIT_CANTCREAT),
            }
        }
        (UserAction::Delete { name }, Some(path)) => match users::set(&path, &name, None) {
            Ok(true) => {
                println!("deleted user {name} from {}", path.display());
                ExitCode::SUCCESS
            }
            Ok(false) => fail(
                &format!("no user {name} in {}", path.display()),
                EXIT_DATAERR,
            ),
            Err(e) => fail(&format!("{}: {e}", path.display()), EXIT_CANTCREAT),
        },
        (_, None) => fail("--config is required", EXIT_DATAERR),
    }
}

/// Creates the users file's directory, as `serve` creates the data directory (mode 0700,
/// missing parents too), so users can be added before the gateway first runs.
fn create_parent(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        None => Ok(()),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("edgemx: {message}");
    ExitCode::from(code)
}

fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        return match password.is_empty() {
            true => Err("empty password on stdin".into()),
            false => Ok(password),
        };
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    match (first == second, first.is_empty()) {
        (false, _) => Err("the passwords differ".into()),
        (true, true) => Err("empty password".into()),
        (true, false) => Ok(first),
    }
}

/// Reads one line from the terminal with echo off, restoring the terminal afterwards.
fn prompt(text: &str) -> Result<String, String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).map_err(|e| format!("terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| format!("terminal: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.map_err(|e| format!("reading the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
