//! The operator CLI: `edgemx console`, on the appliance's serial console (started by init
//! on ttyS0) or on any host against a running gateway's control socket.
//!
//! It owns the conversation with the operator — login, the first-boot wizard, the
//! candidate configuration and its commit, operational views — and reaches the gateway
//! only through the control socket. It must never take the gateway down: every failure is
//! a message, and a panic in one command is caught and reported.
//!
//! # Layout
//!
//! | file | job |
//! | --- | --- |
//! | `words` | splitting lines into words; errors that point at a word |
//! | `schema` | the configuration keys the console knows, with kinds and help |
//! | `candidate` | `set`/`delete` paths on the candidate TOML, diff |
//! | `grammar` | what may come next: one source for `?`, Tab and checking |
//! | `commands` | running a checked command line |
//! | `render` | gateway answers as text |
//! | `term` | rustyline, hidden input, pasted blocks, the pager |
//! | `login`, `wizard`, `power` | the admin account, first-boot setup, reboot and reset |
//! | `link` | the control socket connection |

mod candidate;
mod commands;
mod grammar;
mod link;
mod login;
mod power;
mod render;
mod schema;
mod term;
mod wizard;
mod words;

use commands::{Outcome, Session};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use term::{Input, Term, print};

pub struct Options {
    pub socket: PathBuf,
    /// The admin account file: ask for a login, or run the wizard when it is missing.
    pub login: Option<PathBuf>,
    pub appliance: bool,
}

pub fn run(options: Options) -> ExitCode {
    let mut term = Term::new();
    let mut session = Session {
        link: link::Link::new(options.socket.clone()),
        running: Default::default(),
        candidate: Default::default(),
        hostname: "edgemx".into(),
        page: 24,
        passwd: options.login.clone(),
        appliance: options.appliance,
    };
    // Inside the image the console may start before the gateway: wait as long as it takes.
    let wait = if options.appliance {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(30)
    };
    if options.appliance {
        print("\nedgemx console: waiting for the gateway...\n");
    }
    if let Err(e) = session.link.wait(wait).and_then(|()| session.load()) {
        eprintln!("edgemx console: {e}");
        return ExitCode::from(69);
    }
    if let Some(passwd) = &options.login {
        let banner = format!(
            "\n{} (edgemx {})\n",
            session.hostname,
            env!("CARGO_PKG_VERSION")
        );
        if !login::exists(passwd) {
            if !wizard::run(&mut term, &mut session, passwd) {
                return ExitCode::SUCCESS;
            }
        } else if !login::prompt(&mut term, passwd, &banner) {
            return ExitCode::SUCCESS;
        } else {
            print("Logged in. `help` lists the commands, `?` shows choices.\n");
        }
    }
    repl(&mut term, &mut session);
    ExitCode::SUCCESS
}

fn repl(term: &mut Term, session: &mut Session) {
    loop {
        term.set_commands(true, &session.candidate);
        let line = match term.read(&session.prompt()) {
            Input::Line(line) => line,
            Input::Interrupted => continue,
            Input::End => break,
        };
        // A bracketed paste of several commands arrives as one line with newlines.
        for part in line.split(['\n', '\r']) {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| session.run(term, part)));
            match outcome {
                Ok(Outcome::Continue) => {}
                Ok(Outcome::Exit) => return finish(session),
                Err(_) => {
                    print("internal error in that command; nothing was changed on the gateway\n")
                }
            }
        }
    }
    finish(session);
}

fn finish(session: &Session) {
    if session.changed() {
        print("uncommitted changes were discarded\n");
    }
}
