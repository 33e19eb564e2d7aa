//! The `edgemx` command line: `serve`, `check-config`, `queue …`, and PID 1 inside the
//! image. It lives in the library so that the test crate can build the same binary.
//!
//! `main` is synchronous: the configuration is parsed and validated completely before any
//! port is bound or any file written; a bad one prints every offending key and exits 64.

mod firmware;
mod logsearch;
mod user;

use crate::config::{Config, EXIT_CONFIG};
use crate::control::reply::Done;
use crate::control::{ControlClient, Request};
use crate::delivery::Target;
use crate::envelope::QueueId;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// sysexits(3) codes for failures other than configuration.
const EXIT_SOFTWARE: u8 = 70;
const EXIT_OSERR: u8 = 71;
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(name = "edgemx", version, about = "Edge mail gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Run as the appliance's gateway (the image's init passes it): log lines go to
        /// the log file on the data partition instead of the serial console.
        #[arg(long)]
        appliance: bool,
    },
    /// Validate a configuration file and print every problem found.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Inspect and act on the queue of a running gateway.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        #[arg(long, short, global = true, default_value = "/etc/edgemx/edgemx.toml")]
        config: PathBuf,
    },
    /// The operator CLI against a running gateway's control socket.
    Console {
        /// The gateway's control socket (`data_dir/control.sock`).
        #[arg(long, default_value = "/data/edgemx/control.sock")]
        socket: PathBuf,
        /// Ask for the admin login stored in FILE; without the file, run first-boot setup.
        #[arg(long, value_name = "FILE")]
        login: Option<PathBuf>,
        /// Running on the appliance (started by init): reboot, poweroff, factory-reset.
        #[arg(long, hide = true)]
        appliance: bool,
    },
    /// SMTP AUTH users (relay.users_file) and password hashes.
    User {
        #[command(subcommand)]
        action: user::UserAction,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// The mail-flow probes of a running gateway: state, last reply, latencies.
    Probes {
        #[arg(long, short, default_value = "/etc/edgemx/edgemx.toml")]
        config: PathBuf,
        /// Print the control socket's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// TLS-RPT and DMARC aggregate reports of a running gateway: data waiting, last sends;
    /// `send` reports everything aggregated now.
    Reports {
        #[arg(value_parser = ["send"])]
        action: Option<String>,
        #[arg(long, short, default_value = "/etc/edgemx/edgemx.toml")]
        config: PathBuf,
        /// Print the control socket's JSON answer instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Audit a domain's DNS, or plan an MX change from the live TTLs.
    Dns {
        #[command(subcommand)]
        action: crate::dns::audit::cli::DnsAction,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: crate::dkim::cli::DkimAction,
    },
    /// Signed firmware bundles: verify, inspect, sign.
    Firmware {
        #[command(subcommand)]
        action: firmware::FirmwareAction,
    },
    /// The gateway's log: message tracking over the control socket.
    Log {
        #[command(subcommand)]
        action: logsearch::LogAction,
    },
    /// PID 1 duties inside the appliance image.
    Init,
}

#[derive(Subcommand)]
enum QueueAction {
    /// One line per queued message.
    List,
    /// Envelope, per-recipient status and headers of one message.
    Show { id: QueueId },
    /// Attempt delivery now, for one message or with --all for every message.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<QueueId>,
        #[arg(long)]
        all: bool,
    },
    /// Remove a message from the queue without delivering it (no bounce is sent).
    Delete { id: QueueId },
    /// Keep a message, or every message for a domain, from delivery until released.
    Hold(Which),
    /// Release held mail (one message, a domain, or --all) and attempt it now.
    Release(Which),
    /// Deliver now: one message, a domain, or --all (paced by flow.drain_rate).
    Flush(Which),
    /// Up/down state of every watched next hop.
    Health,
    /// Shrink the queue file to what the queued mail needs (new mail waits meanwhile).
    Compact,
}

/// One message, the messages for a domain, or all of them.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Which {
    id: Option<QueueId>,
    #[arg(long)]
    domain: Option<String>,
    #[arg(long)]
    all: bool,
}

impl Which {
    fn target(&self) -> Target {
        match (&self.id, &self.domain) {
            (Some(id), _) => Target::Message(*id),
            (None, Some(domain)) => Target::Domain {
                name: domain.trim_end_matches('.').to_ascii_lowercase(),
                subdomains: false,
            },
            (None, None) => Target::All,
        }
    }
}

/// Runs the command named by the process arguments.
pub fn main() -> ExitCode {
    if std::process::id() == 1 {
        crate::init::run();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, appliance } => serve(&config, appliance),
        Command::CheckConfig { config } => match load(&config) {
            // The DKIM keys it names are part of it too (serve reads them at start).
            Ok(loaded) => match crate::dkim::Signer::load(&loaded) {
                Ok(_) => {
                    for warning in advice(&loaded) {
                        eprintln!("{}: warning: {warning}", config.display());
                    }
                    println!("{}: configuration is valid", config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    ExitCode::from(EXIT_CONFIG as u8)
                }
            },
            Err(code) => code,
        },
        Command::Queue { action, config } => queue(action, &config),
        Command::Console {
            socket,
            login,
            appliance,
        } => crate::console::run(crate::console::Options {
            socket,
            login,
            appliance,
        }),
        Command::User { action, config } => match config.as_deref().map(load).transpose() {
            Ok(config) => user::run(action, config),
            Err(code) => code,
        },
        Command::Probes { config, json } => probes(&config, json),
        Command::Reports {
            action,
            config,
            json,
        } => reports(&config, action.is_some(), json),
        Command::Dns { action } => crate::dns::audit::cli::run(action),
        Command::Dkim { action } => crate::dkim::cli::run(action),
        Command::Firmware { action } => firmware::run(action),
        Command::Log { action } => logsearch::run(action),
        Command::Init => crate::init::run(),
    }
}

/// Warnings about a valid configuration (see `config::advice`).
fn advice(config: &Config) -> Vec<String> {
    crate::config::advice::warnings(config, Path::new("/etc/resolv.conf"))
}

pub(crate) fn load(path: &Path) -> Result<Config, ExitCode> {
    let fail = |errors: crate::config::ConfigErrors| {
        eprint!("{errors}");
        ExitCode::from(EXIT_CONFIG as u8)
    };
    let config = crate::loader::load(path).map_err(fail)?;
    // The address files named by the configuration are part of it: a bad line stops here.
    let errors = crate::routing::load::check_files(&config);
    if !errors.is_empty() {
        let file = path.to_path_buf();
        return Err(fail(crate::config::ConfigErrors { file, errors }));
    }
    Ok(config)
}

fn serve(path: &Path, appliance: bool) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    crate::observe::init(&config.log, &config.hostname, &config.data_dir, appliance);
    for warning in advice(&config) {
        log::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edgemx: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_OSERR);
        }
    };
    let code = runtime.block_on(async move {
        let mut listeners = Vec::new();
        for l in &config.listeners {
            match crate::smtp::inbound::listen(l.address) {
                Ok(listener) => listeners.push(crate::server::Bound {
                    listener,
                    starttls: l.starttls,
                    role: l.role,
                }),
                Err(e) => {
                    log::error!("cannot listen on {}: {e}", l.address);
                    return ExitCode::from(EXIT_OSERR);
                }
            }
        }
        let admin = match config.admin.enabled {
            true => match std::net::TcpListener::bind(config.admin.address) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    log::error!(
                        "cannot listen on {} (admin.address): {e}",
                        config.admin.address
                    );
                    return ExitCode::from(EXIT_OSERR);
                }
            },
            false => None,
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(crate::server::on_signals(shutdown.clone()));
        match crate::server::run_with_admin(config, listeners, admin, shutdown, appliance).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                ExitCode::from(EXIT_SOFTWARE)
            }
        }
    });
    // Sessions that outlived the shutdown deadline are dropped here, unacknowledged.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // The syslog collectors' last lines ("stopped"); bounded, see `observe::syslog`.
    log::logger().flush();
    code
}

fn queue(action: QueueAction, path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let request = match &action {
        QueueAction::List => Request::List,
        QueueAction::Show { id } => Request::Show { id: *id },
        QueueAction::Retry { id, .. } => Request::Retry { id: *id },
        QueueAction::Delete { id } => Request::Delete { id: *id },
        QueueAction::Hold(which) => Request::Hold {
            target: which.target(),
        },
        QueueAction::Release(which) => Request::Release {
            target: which.target(),
        },
        QueueAction::Flush(which) => Request::Flush {
            target: which.target(),
        },
        QueueAction::Health => Request::Health,
        QueueAction::Compact => Request::Compact,
    };
    let answer = ControlClient::connect(&config.control_socket()).and_then(|mut c| {
        use crate::control::{format_entries, format_health, format_show};
        use std::io::Write;
        match action {
            QueueAction::List => {
                // Printed page by page: a queue of a million messages streams out.
                let mut out = std::io::stdout().lock();
                let count = c.each_page(|page| {
                    let _ = out.write_all(format_entries(page).as_bytes());
                })?;
                Ok(format!("{count} message(s)\n"))
            }
            QueueAction::Show { .. } => c.ask(&request).map(|v| format_show(&v)),
            QueueAction::Health => c.ask(&request).map(|v: Vec<_>| format_health(&v)),
            _ => c.ask(&request).map(|Done(text)| text + "\n"),
        }
    });
    match answer {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn reports(path: &Path, send: bool, json: bool) -> ExitCode {
    use crate::control::ConsoleRequest;
    use crate::control::reply::ReportsStatus;
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let request = Request::Console {
        call: ConsoleRequest::Reports { send },
    };
    let answer = ControlClient::connect(&config.control_socket()).and_then(|mut c| match json {
        true => c.call(&request).map(|data| format!("{data}\n")),
        false => c.ask(&request).map(|v: ReportsStatus| match send {
            true => v.sent_text(),
            false => v.text(),
        }),
    });
    match answer {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn probes(path: &Path, json: bool) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // `--json` passes the answer through as the gateway sent it.
    let answer = ControlClient::connect(&config.control_socket()).and_then(|mut c| match json {
        true => c.call(&Request::Probes).map(|data| format!("{data}\n")),
        false => c
            .ask(&Request::Probes)
            .map(|rows: Vec<_>| crate::probe::format_status(&rows)),
    });
    match answer {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}
