//! First-boot setup: admin password, hostname, network, accepted domains (role and next
//! hops), relay networks, TLS certificate, inbound SPF/DKIM/DMARC checks; then a summary and
//! one commit.
//!
//! Every answer is checked as it is typed, with the same parsers the configuration uses.
//! Questions about settings this gateway build does not know (found by asking it to
//! validate a sample) are skipped rather than producing a configuration it would refuse.

use super::candidate;
use super::commands::Session;
use super::login;
use super::term::{Input, Term, print};
use crate::config::NextHop;
use crate::control::ConsoleRequest;
use crate::control::reply::{Committed, Done, InstalledCert};
use std::path::Path;
use toml::{Table, Value};

/// Runs the wizard; `true` once committed and the password stored.
pub fn run(term: &mut Term, session: &mut Session, passwd: &Path) -> bool {
    term.set_commands(false, &session.candidate);
    print(
        "\nWelcome to edgemx. This setup asks a few questions, shows a summary and applies it.\nDefaults are in [brackets]; Enter takes them. Ctrl-C starts over.\n\n",
    );
    let mut password = None;
    loop {
        // Chosen once: a configuration the gateway refuses sends the operator back to the
        // questions, not to the password.
        if password.is_none() {
            password = login::choose(term);
        }
        let Some(chosen) = password.clone() else {
            return false;
        };
        match questions(term, session) {
            Answer::Done(table) => {
                print("\n--- summary ---\n");
                print(&text(&table));
                print("---------------\n");
                match ask(term, "Apply this configuration?", "yes", |a| {
                    matches!(a, "yes" | "no")
                        .then_some(())
                        .ok_or("answer yes or no".into())
                }) {
                    Answer::Done(a) if a == "yes" => {}
                    Answer::End => return false,
                    _ => continue,
                }
                let committed = text(&table);
                let commit = ConsoleRequest::Commit {
                    text: committed.clone(),
                    comment: "setup wizard".into(),
                    confirm: None,
                };
                match session.link.console::<Committed>(commit) {
                    Ok(_) => {}
                    Err(e) => {
                        print(&format!(
                            "The gateway refused the configuration:\n{e}\nLet us go through it again.\n\n"
                        ));
                        continue;
                    }
                }
                if let Err(e) = login::set(passwd, &chosen) {
                    print(&format!("cannot store the admin password: {e}\n"));
                    return false;
                }
                session.running = candidate::document(&committed).unwrap_or_default();
                session.candidate = session.running.clone();
                if let Some(h) = table.get("hostname").and_then(Value::as_str) {
                    session.hostname = h.to_string();
                }
                print("Setup complete. Type `help` for the commands, `?` anywhere for choices.\n");
                return true;
            }
            Answer::Again => {
                password = None;
                print("\nStarting over.\n\n");
            }
            Answer::End => return false,
        }
    }
}

enum Answer<T> {
    Done(T),
    /// Ctrl-C: from the top.
    Again,
    End,
}

macro_rules! get {
    ($e:expr) => {
        match $e {
            Answer::Done(v) => v,
            Answer::Again => return Answer::Again,
            Answer::End => return Answer::End,
        }
    };
}

fn questions(term: &mut Term, session: &mut Session) -> Answer<Table> {
    // The wizard answers questions into a plain table: it runs before the operator has
    // a file of their own, so there are no comments to keep.
    let mut t: Table = candidate::render(&session.running)
        .parse()
        .unwrap_or_default();
    let current = |t: &Table, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let hostname = get!(ask(
        term,
        "Hostname (as in your MX records)",
        &current(&t, "hostname"),
        |a| {
            crate::config::valid_hostname(a)
                .then_some(())
                .ok_or("not a host name".into())
        }
    ));
    t.insert("hostname".into(), hostname.into());

    let mut net = Table::new();
    let mode = get!(ask(term, "Network: dhcp or static", "dhcp", |a| {
        matches!(a, "dhcp" | "static")
            .then_some(())
            .ok_or("answer dhcp or static".into())
    }));
    net.insert("mode".into(), mode.clone().into());
    if mode == "static" {
        let address = get!(ask(term, "Address with prefix (A.B.C.D/N)", "", |a| {
            // The rule `commit` applies to network.address (and init).
            crate::config::network::parse_address(a)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
        net.insert("address".into(), address.into());
        let gateway = get!(ask(term, "Default gateway (empty for none)", "", |a| {
            (a.is_empty() || a.parse::<std::net::Ipv4Addr>().is_ok())
                .then_some(())
                .ok_or("not an IPv4 address".into())
        }));
        if !gateway.is_empty() {
            net.insert("gateway".into(), gateway.into());
        }
        let dns = get!(ask(
            term,
            "DNS servers (space separated, empty for none)",
            "",
            |a| {
                a.split_whitespace()
                    .all(|d| d.parse::<std::net::Ipv4Addr>().is_ok())
                    .then_some(())
                    .ok_or("IPv4 addresses, separated by blanks".into())
            }
        ));
        net.insert("dns".into(), list(&dns));
    }
    t.insert("network".into(), Value::Table(net));

    let knows_role = knows(session, &t, "role = \"primary\"");
    let mut domains = Vec::new();
    loop {
        let prompt = if domains.is_empty() {
            "Accepted domain (e.g. example.com)"
        } else {
            "Another domain (empty when done)"
        };
        let name = get!(ask(term, prompt, "", |a| {
            (a.is_empty() || crate::config::valid_hostname(a))
                .then_some(())
                .ok_or("not a domain name".into())
        }));
        if name.is_empty() {
            if domains.is_empty() {
                print("  at least one domain is needed\n");
                continue;
            }
            break;
        }
        let mut d = Table::new();
        d.insert("name".into(), name.to_ascii_lowercase().into());
        if knows_role {
            let role = get!(ask(
                term,
                &format!("Role for {name}: primary or secondary MX"),
                "primary",
                |a| {
                    matches!(a, "primary" | "secondary")
                        .then_some(())
                        .ok_or("answer primary or secondary".into())
                }
            ));
            if role != "primary" {
                d.insert("role".into(), role.into());
            }
        }
        let hops = get!(ask(
            term,
            &format!("Next hops for {name} (HOST:PORT ..., or mx)"),
            "",
            |a| {
                if a.is_empty() {
                    return Err("at least one next hop".into());
                }
                a.split_whitespace().try_for_each(|h| {
                    NextHop::parse(h)
                        .map(|_| ())
                        .map_err(|e| format!("{h}: {e}"))
                })
            }
        ));
        d.insert("next_hops".into(), list(&hops));
        domains.push(Value::Table(d));
    }
    t.insert("domain".into(), Value::Array(domains));

    if knows(session, &t, "") {
        let nets = get!(ask(
            term,
            "Networks allowed to relay (CIDR, space separated, empty for none)",
            "",
            |a| {
                // The rules `commit` applies to relay.networks (config::cidr).
                a.split_whitespace().try_for_each(|n| {
                    n.parse::<crate::config::Cidr>()
                        .map(|_| ())
                        .map_err(|e| format!("{n}: {e}"))
                })
            }
        ));
        if !nets.is_empty() {
            let mut relay = Table::new();
            relay.insert("networks".into(), list(&nets));
            t.insert("relay".into(), Value::Table(relay));
        }
    }

    let tls = get!(ask(
        term,
        "TLS certificate: generate (self-signed ECDSA) or paste (PEM)",
        "generate",
        |a| {
            matches!(a, "generate" | "paste")
                .then_some(())
                .ok_or("answer generate or paste".into())
        }
    ));
    if tls == "generate" {
        t.remove("tls");
    } else {
        loop {
            print("Paste the certificate chain (PEM), then an empty line:\n");
            let Some(cert) = term.block("") else {
                return Answer::Again;
            };
            let Some(key) = term.secret_block(
                "Paste the private key (PEM), then an empty line (it is not shown):\n",
                "",
            ) else {
                return Answer::Again;
            };
            match session
                .link
                .console(ConsoleRequest::InstallCert { cert, key })
            {
                Ok(InstalledCert {
                    certificate,
                    private_key,
                }) => {
                    let mut tls = Table::new();
                    tls.insert("certificate".into(), certificate.into());
                    tls.insert("private_key".into(), private_key.into());
                    t.insert("tls".into(), Value::Table(tls));
                    break;
                }
                Err(e) => print(&format!("  {e}\n  Again.\n")),
            }
        }
    }
    let verify = get!(ask_verify(term, &t));
    let mut auth = t
        .get("auth")
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();
    auth.insert("verify".into(), Value::Boolean(verify));
    t.insert("auth".into(), Value::Table(auth));
    Answer::Done(t)
}

/// `[auth] verify`: the current setting is the default (the built-in default is on).
fn ask_verify(term: &mut Term, t: &Table) -> Answer<bool> {
    let current = t
        .get("auth")
        .and_then(|a| a.get("verify"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let answer = get!(ask(
        term,
        "Check SPF, DKIM and DMARC on inbound mail (needs a recursive DNS resolver): yes or no",
        if current { "yes" } else { "no" },
        |a| {
            matches!(a, "yes" | "no")
                .then_some(())
                .ok_or("answer yes or no".into())
        }
    ));
    Answer::Done(answer == "yes")
}

/// Whether the gateway accepts `[relay]` (empty `domain_key`) or a `[[domain]]` key.
fn knows(session: &mut Session, t: &Table, domain_key: &str) -> bool {
    let mut sample = t.clone();
    if domain_key.is_empty() {
        sample.insert("relay".into(), Value::Table(Table::new()));
    } else {
        sample.remove("domain");
    }
    let mut text = text(&sample);
    if !domain_key.is_empty() {
        text.push_str(&format!(
            "\n[[domain]]\nname = \"probe.invalid\"\nnext_hops = [\"mx\"]\n{domain_key}\n"
        ));
    }
    !matches!(session.link.console::<Done>(ConsoleRequest::Check { text }), Err(e) if e.contains("unknown field"))
}

fn text(table: &Table) -> String {
    toml::to_string(table).unwrap_or_default()
}

fn list(words: &str) -> Value {
    Value::Array(
        words
            .split_whitespace()
            .map(|w| Value::String(w.into()))
            .collect(),
    )
}

/// One question; the default is taken on Enter, the answer checked by `valid`.
fn ask(
    term: &mut Term,
    question: &str,
    default: &str,
    valid: impl Fn(&str) -> Result<(), String>,
) -> Answer<String> {
    let prompt = if default.is_empty() {
        format!("{question}: ")
    } else {
        format!("{question} [{default}]: ")
    };
    loop {
        let answer = match term.read(&prompt) {
            Input::Line(l) => l.trim().to_string(),
            Input::Interrupted => return Answer::Again,
            Input::End => return Answer::End,
        };
        let answer = if answer.is_empty() {
            default.to_string()
        } else {
            answer
        };
        match valid(&answer) {
            Ok(()) => return Answer::Done(answer),
            Err(why) => print(&format!("  {why}\n")),
        }
    }
}
