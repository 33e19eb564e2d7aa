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
//! | `schema` | the key tree of `config::keys` as the console walks it; value placeholders |
//! | `candidate` | `set`/`delete` paths on the candidate document (comments kept), diff |
//! | `grammar` | what may come next: one source for `?`, Tab and checking |
//! | `commands` | running a checked command line |
//! | `render` | gateway answers as text |
//! | `term` | rustyline, hidden input, pasted blocks, the pager |
//! | `login`, `wizard`, `power` | the admin account, first-boot setup, reboot and reset |
//! | `link` | the control socket connection |
//! | `machine` | the machine's addresses and clock for `show status` |
//! | `ping` | `ping HOST`: ICMP echo for diagnostics |
//! | `monitor` | `monitor start`: log lines shown as they come, between commands |

mod candidate;
mod commands;
mod grammar;
mod link;
mod login;
mod machine;
mod monitor;
mod ping;
mod pipe;
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
        monitor: None,
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
    if let Some(limit) = crate::config::console::Console::idle_timeout_in(&session.running) {
        term.idle_logout(limit);
    }
    repl(&mut term, &mut session);
    ExitCode::SUCCESS
}

/// What `set` and `delete` do to a configuration text, without a gateway: the same
/// checking and editing as the console's, for tests and tools.
pub struct Editor {
    candidate: toml_edit::DocumentMut,
}

impl Editor {
    pub fn new(text: &str) -> Result<Editor, String> {
        Ok(Editor {
            candidate: candidate::document(text)?,
        })
    }

    /// A `set …` or `delete …` line; the error is what the console prints under it.
    pub fn run(&mut self, line: &str) -> Result<(), String> {
        let words = words::split(line);
        let fail = |f: words::Failure| f.render(0, line, &words);
        grammar::check(&words, &self.candidate).map_err(fail)?;
        match words[0].text.as_str() {
            "set" => candidate::set_words(&mut self.candidate, &words[1..]),
            "delete" => candidate::delete_words(&mut self.candidate, &words[1..]),
            _ => Err(words::Failure::at(0, "only set and delete edit")),
        }
        .map_err(fail)
    }

    /// What `show candidate` prints (and `commit` sends).
    pub fn candidate(&self) -> String {
        candidate::render(&self.candidate)
    }
}

fn repl(term: &mut Term, session: &mut Session) {
    loop {
        term.set_commands(true, &session.candidate);
        if let Some(monitor) = &session.monitor {
            monitor.flush();
        }
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
