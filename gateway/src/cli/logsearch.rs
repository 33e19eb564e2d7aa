//! `edgemx log search …`: message tracking from the host, over the running gateway's
//! control socket (the same search as the console's `track`).

use crate::control::{ConsoleRequest, ControlClient, Request};
use crate::observe::track::{self, Query, Trail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_USAGE: u8 = 64;
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Subcommand)]
pub enum LogAction {
    /// Every step of the messages matching all the given criteria (at least one).
    Search {
        /// Queue id (16 hex digits, as in the 250 reply).
        #[arg(long)]
        id: Option<String>,
        /// Message-ID header, or part of it.
        #[arg(long)]
        message_id: Option<String>,
        /// Envelope sender, or part of it (@example.com).
        #[arg(long)]
        from: Option<String>,
        /// A recipient, or part of one.
        #[arg(long)]
        to: Option<String>,
        /// The client's address or name.
        #[arg(long)]
        client: Option<String>,
        /// From this time (2026-12-03T18:30) or this long ago (2h).
        #[arg(long)]
        since: Option<String>,
        /// Before this time or this long ago.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, short, default_value = "/etc/edgemx/edgemx.toml")]
        config: PathBuf,
    },
}

pub fn run(action: LogAction) -> ExitCode {
    let LogAction::Search {
        id,
        message_id,
        from,
        to,
        client,
        since,
        until,
        config,
    } = action;
    let bound = |t: Option<String>| t.map(|t| track::time_bound(&t)).transpose();
    let (since, until) = match (bound(since), bound(until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("edgemx: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let query = Query {
        id,
        message_id,
        from,
        to,
        client,
        since,
        until,
    };
    if !query.names_a_message() {
        eprintln!("edgemx: say what to track: --id, --message-id, --from, --to or --client");
        return ExitCode::from(EXIT_USAGE);
    }
    let config = match crate::cli::load(&config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let request = Request::Console {
        call: ConsoleRequest::Track { query },
    };
    match ControlClient::connect(&config.control_socket()).and_then(|mut c| c.ask(&request)) {
        Ok(trails) => {
            let trails: Vec<Trail> = trails;
            print!("{}", track::format(&trails));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: log search: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}
