//! `edgemx dns check` and `edgemx dns plan-mx-change`.
//!
//! Resolvers come from `--resolver IP:PORT` (repeatable), else from `[dns] nameservers` of
//! `--config`, else from `/etc/resolv.conf`; never from a public provider.
//!
//! Exit status of `check`: 0 when no error was found (warnings and notes allowed), 1 when at
//! least one error was found, 64 for bad arguments or configuration. `plan-mx-change`: 0, or
//! 69 when the MX records cannot be read.

use super::{Ours, Role};
use crate::config::{self, Config};
use crate::dns::Resolver;
use clap::Subcommand;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_FINDINGS: u8 = 1;
const EXIT_USAGE: u8 = 64;
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Subcommand)]
pub enum DnsAction {
    /// Audit the MX, SPF, DMARC, MTA-STS and TLS-RPT records of DOMAIN.
    Check {
        domain: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// A resolver to ask (repeat to compare several); default: [dns] of --config.
        #[arg(long = "resolver", value_name = "IP:PORT")]
        resolvers: Vec<SocketAddr>,
        /// The gateway's configuration: its hostname, resolvers and listener addresses.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Our host name as published in MX (default: `hostname` of --config).
        #[arg(long)]
        hostname: Option<String>,
        /// Our role for the domain, to check our place in the MX set.
        #[arg(long, value_enum)]
        role: Option<Role>,
        /// An address our outbound mail leaves from (repeatable), checked against SPF.
        #[arg(long = "outbound", value_name = "IP")]
        outbound: Vec<IpAddr>,
    },
    /// Print a timed plan to move DOMAIN's MX records to HOSTS, from the live TTL.
    PlanMxChange {
        domain: String,
        /// New MX hosts, `HOST` or `PREF:HOST`, comma-separated or repeated.
        #[arg(long, required = true, value_name = "HOSTS")]
        to: Vec<String>,
        /// The TTL to use around the change, in seconds.
        #[arg(long, default_value_t = 300)]
        low_ttl: u32,
        #[arg(long)]
        json: bool,
        #[arg(long = "resolver", value_name = "IP:PORT")]
        resolvers: Vec<SocketAddr>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn run(action: DnsAction) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edgemx: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    runtime.block_on(async move {
        match action {
            DnsAction::Check {
                domain,
                json,
                resolvers,
                config,
                hostname,
                role,
                outbound,
            } => {
                let config = match load(config.as_ref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                let Ok(resolvers) = build(&resolvers, config.as_ref()) else {
                    return ExitCode::from(EXIT_USAGE);
                };
                let mut ours = Ours {
                    hostname,
                    role,
                    outbound,
                };
                if let Some(config) = &config {
                    ours.hostname.get_or_insert_with(|| config.hostname.clone());
                    if ours.outbound.is_empty() {
                        ours.outbound = config
                            .listeners
                            .iter()
                            .map(|l| l.address.ip())
                            .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
                            .collect();
                    }
                }
                let report = super::check(&domain, &resolvers, &ours).await;
                if json {
                    println!("{}", report.json());
                } else {
                    print!("{}", report.human());
                }
                if report.errors > 0 {
                    ExitCode::from(EXIT_FINDINGS)
                } else {
                    ExitCode::SUCCESS
                }
            }
            DnsAction::PlanMxChange {
                domain,
                to,
                low_ttl,
                json,
                resolvers,
                config,
            } => {
                let config = match load(config.as_ref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                let Ok(resolvers) = build(&resolvers, config.as_ref()) else {
                    return ExitCode::from(EXIT_USAGE);
                };
                let Some((_, resolver)) = resolvers.first() else {
                    return ExitCode::from(EXIT_USAGE);
                };
                match super::plan(resolver, &domain, &to, low_ttl, crate::time::unix_now()).await {
                    Ok(plan) if json => {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&plan).unwrap_or_default()
                        );
                        ExitCode::SUCCESS
                    }
                    Ok(plan) => {
                        print!("{}", plan.human());
                        ExitCode::SUCCESS
                    }
                    Err(e) if e.starts_with('`') || e.starts_with("--to") => {
                        eprintln!("edgemx: {e}");
                        ExitCode::from(EXIT_USAGE)
                    }
                    Err(e) => {
                        eprintln!("edgemx: {e}");
                        ExitCode::from(EXIT_UNAVAILABLE)
                    }
                }
            }
        }
    })
}

fn load(path: Option<&PathBuf>) -> Result<Option<Config>, ExitCode> {
    let Some(path) = path else { return Ok(None) };
    Config::load(path).map(Some).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(config::EXIT_CONFIG as u8)
    })
}

/// One resolver per `--resolver`, else one from the configuration (or resolv.conf).
fn build(addrs: &[SocketAddr], config: Option<&Config>) -> Result<Vec<(String, Resolver)>, ()> {
    let timeout = config.and_then(|c| c.dns.timeout);
    let sets: Vec<(String, config::Dns)> = if addrs.is_empty() {
        let dns = config.map(|c| c.dns.clone()).unwrap_or_default();
        let name = if dns.nameservers.is_empty() {
            "/etc/resolv.conf".to_string()
        } else {
            dns.nameservers
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![(name, dns)]
    } else {
        addrs
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    config::Dns {
                        nameservers: vec![*a],
                        timeout,
                    },
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    for (name, dns) in sets {
        match Resolver::new(&dns) {
            Ok(resolver) => out.push((name, resolver)),
            Err(e) => {
                eprintln!("edgemx: resolver {name}: {e}");
                return Err(());
            }
        }
    }
    Ok(out)
}
