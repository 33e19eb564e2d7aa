//! First-boot setup: admin password, hostname, network, accepted domains (role and next
//! hops), relay networks, TLS certificate, inbound SPF/DKIM/DMARC checks; then a summary and
//! one commit.
//!
//! Every answer is checked as it is typed, with the same parsers the configuration uses;
//! `?` at a question explains it. Answers left as they are keep the running configuration's
//! value, the first domain defaults to the host name's domain, and a configuration the
//! gateway refuses at Apply brings back only the question at fault.
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

/// Runs the wizard; `true` once committed and the password stored.
pub fn run(term: &mut Term, session: &mut Session, passwd: &Path) -> bool {
    term.set_commands(false, &session.candidate);
    print(
        "\nWelcome to edgemx. This setup asks a few questions, shows a summary and applies it.\nDefaults are in [brackets]; Enter takes them, `?` explains the question. Ctrl-C starts over.\n\n",
    );
    let mut password = None;
    // The answers so far, and the sections still to ask (all of them at first; after a
    // refused Apply only the one at fault).
    let mut t: Table = Table::new();
    let mut pending: Vec<Section> = Vec::new();
    loop {
        // Chosen once: a configuration the gateway refuses sends the operator back to the
        // question at fault, not to the password.
        if password.is_none() {
            password = login::choose(term);
            t = candidate::render(&session.running)
                .parse()
                .unwrap_or_default();
            pending = SECTIONS.to_vec();
        }
        let Some(chosen) = password.clone() else {
            return false;
        };
        let mut answered = Answer::Done(());
        for section in std::mem::take(&mut pending) {
            answered = ask_section(section, term, session, &mut t);
            if !matches!(answered, Answer::Done(())) {
                break;
            }
        }
        match answered {
            Answer::Done(()) => {}
            Answer::Again => {
                password = None;
                print("\nStarting over.\n\n");
                continue;
            }
            Answer::End => return false,
        }
        print("\n--- summary ---\n");
        print(&text(&t));
        print("---------------\n");
        match ask(
            term,
            "Apply this configuration?",
            "yes",
            "yes applies it now; no goes through the questions again",
            |a| {
                matches!(a, "yes" | "no")
                    .then_some(())
                    .ok_or("answer yes or no".into())
            },
        ) {
            Answer::Done(a) if a == "yes" => {}
            Answer::End => return false,
            _ => {
                pending = SECTIONS.to_vec();
                continue;
            }
        }
        let committed = text(&t);
        let commit = ConsoleRequest::Commit {
            text: committed.clone(),
            comment: "setup wizard".into(),
            confirm: None,
        };
        if let Err(e) = session.link.console::<Committed>(commit) {
            let fault = fault(&e);
            print(&format!(
                "The gateway refused the configuration:\n{e}\n{}\n\n",
                match fault {
                    Some(_) => "Back to that question; every other answer is kept.",
                    None => "Let us go through it again.",
                }
            ));
            pending = fault.map_or_else(|| SECTIONS.to_vec(), |s| vec![s]);
            continue;
        }
        if let Err(e) = login::set(passwd, &chosen) {
            print(&format!("cannot store the admin password: {e}\n"));
            return false;
        }
        session.running = candidate::document(&committed).unwrap_or_default();
        session.candidate = session.running.clone();
        if let Some(h) = t.get("hostname").and_then(Value::as_str) {
            session.hostname = h.to_string();
        }
        print("Setup complete. Type `help` for the commands, `?` anywhere for choices.\n");
        return true;
    }
}

/// The wizard's questions, in the order asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Hostname,
    Network,
    Domains,
    Relay,
    Tls,
    Verify,
}

const SECTIONS: &[Section] = &[
    Section::Hostname,
    Section::Network,
    Section::Domains,
    Section::Relay,
    Section::Tls,
    Section::Verify,
];

/// The section a refusal names first: the gateway's errors start with the key
/// (`network.address = …: …`, `domain[0].next_hops[0] = …`).
fn fault(error: &str) -> Option<Section> {
    error.split_whitespace().find_map(|word| {
        let key = word.trim_start_matches("error:").trim_end_matches(':');
        match key.split(['.', '[']).next()? {
            "hostname" => Some(Section::Hostname),
            "network" => Some(Section::Network),
            "domain" => Some(Section::Domains),
            "relay" => Some(Section::Relay),
            "tls" => Some(Section::Tls),
            "auth" => Some(Section::Verify),
            _ => None,
        }
    })
}

fn ask_section(
    section: Section,
    term: &mut Term,
    session: &mut Session,
    t: &mut Table,
) -> Answer<()> {
    match section {
        Section::Hostname => ask_hostname(term, t),
        Section::Network => ask_network(term, t),
        Section::Domains => ask_domains(term, session, t),
        Section::Relay => ask_relay(term, session, t),
        Section::Tls => ask_tls(term, session, t),
        Section::Verify => {
            let verify = get!(ask_verify(term, t));
            let mut auth = t
                .get("auth")
                .and_then(Value::as_table)
                .cloned()
                .unwrap_or_default();
            auth.insert("verify".into(), Value::Boolean(verify));
            t.insert("auth".into(), Value::Table(auth));
            Answer::Done(())
        }
    }
}

fn current(t: &Table, key: &str) -> String {
    t.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn ask_hostname(term: &mut Term, t: &mut Table) -> Answer<()> {
    let hostname = get!(ask(
        term,
        "Hostname (as in your MX records)",
        &current(t, "hostname"),
        "the name this gateway greets with and that your MX records point at, e.g. \
         mx1.example.net",
        |a| {
            crate::config::valid_hostname(a)
                .then_some(())
                .ok_or("not a host name".into())
        }
    ));
    t.insert("hostname".into(), hostname.into());
    Answer::Done(())
}

fn ask_network(term: &mut Term, t: &mut Table) -> Answer<()> {
    let mut net = Table::new();
    let mode = get!(ask(
        term,
        "Network: dhcp or static",
        "dhcp",
        "dhcp takes address, gateway and DNS servers from the network; static asks for them",
        |a| {
            matches!(a, "dhcp" | "static")
                .then_some(())
                .ok_or("answer dhcp or static".into())
        }
    ));
    net.insert("mode".into(), mode.clone().into());
    if mode == "static" {
        let address = get!(ask(
            term,
            "Address with prefix (A.B.C.D/N)",
            "",
            "this gateway's address and the length of its network's prefix, e.g. \
             192.0.2.10/24",
            |a| {
                // The rule `commit` applies to network.address (and init).
                crate::config::network::parse_address(a)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        ));
        net.insert("address".into(), address.into());
        let gateway = get!(ask(
            term,
            "Default gateway (empty for none)",
            "",
            "the router for addresses outside that network, e.g. 192.0.2.1",
            |a| {
                (a.is_empty() || a.parse::<std::net::Ipv4Addr>().is_ok())
                    .then_some(())
                    .ok_or("not an IPv4 address".into())
            }
        ));
        if !gateway.is_empty() {
            net.insert("gateway".into(), gateway.into());
        }
        let dns = get!(ask(
            term,
            "DNS servers (space separated, empty for none)",
            "",
            "recursive resolvers for MX lookups and SPF/DKIM/DMARC checks, e.g. 192.0.2.53",
            |a| {
                a.split_whitespace()
                    .all(|d| d.parse::<std::net::IpAddr>().is_ok())
                    .then_some(())
                    .ok_or("IP addresses, separated by blanks".into())
            }
        ));
        net.insert("dns".into(), list(&dns));
    }
    let ipv6 = get!(ask(
        term,
        "IPv6: auto, static or off",
        "auto",
        "auto takes addresses, the default route and DNS servers from the network's router \
         advertisements (SLAAC); static asks for them; off leaves IPv6 unused",
        |a| {
            matches!(a, "auto" | "static" | "off")
                .then_some(())
                .ok_or("answer auto, static or off".into())
        }
    ));
    if ipv6 != "auto" {
        net.insert("ipv6".into(), ipv6.clone().into());
    }
    if ipv6 == "static" {
        let address = get!(ask(
            term,
            "IPv6 address with prefix (2001:db8::10/64)",
            "",
            "this gateway's IPv6 address and its prefix length",
            |a| crate::config::network::parse_address6(a).map(|_| ())
        ));
        net.insert("address6".into(), address.into());
        let router = get!(ask(
            term,
            "IPv6 default router (empty for none)",
            "",
            "the router for IPv6 destinations, e.g. fe80::1",
            |a| {
                (a.is_empty() || a.parse::<std::net::Ipv6Addr>().is_ok())
                    .then_some(())
                    .ok_or("not an IPv6 address".into())
            }
        ));
        if !router.is_empty() {
            net.insert("gateway6".into(), router.into());
        }
    }
    t.insert("network".into(), Value::Table(net));
    Answer::Done(())
}

/// The domain a host name belongs to (`mx1.example.net` → `example.net`), the default
/// first domain; none for a single label.
fn parent_domain(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn ask_domains(term: &mut Term, session: &mut Session, t: &mut Table) -> Answer<()> {
    let knows_role = knows(session, t, "role = \"primary\"");
    // The next hops offered: the running configuration's first domain's (the factory
    // configuration's on a fresh appliance), then the previous answer's.
    let mut hops_default = t
        .get("domain")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|d| d.get("next_hops"))
        .and_then(Value::as_array)
        .map(|hops| {
            hops.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let mut domains = Vec::new();
    loop {
        let (prompt, default) = if domains.is_empty() {
            (
                "Accepted domain (e.g. example.com)",
                parent_domain(&current(t, "hostname")),
            )
        } else {
            ("Another domain (empty when done)", String::new())
        };
        let name = get!(ask(
            term,
            prompt,
            &default,
            "a domain this gateway receives mail for (the part after @); add more one by one",
            |a| {
                (a.is_empty() || crate::config::valid_hostname(a))
                    .then_some(())
                    .ok_or("not a domain name".into())
            }
        ));
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
                "primary: this gateway receives the domain's mail first and relays it to the \
                 next hops; secondary: it holds mail while the primary MX is down",
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
            &hops_default,
            "where mail for the domain goes: your mail server(s), e.g. 10.0.0.5:25 \
             exchange.corp.local:25, or mx to follow the domain's MX records",
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
        hops_default = hops;
        domains.push(Value::Table(d));
    }
    t.insert("domain".into(), Value::Array(domains));
    Answer::Done(())
}

fn ask_relay(term: &mut Term, session: &mut Session, t: &mut Table) -> Answer<()> {
    if !knows(session, t, "") {
        return Answer::Done(());
    }
    let nets = get!(ask(
        term,
        "Networks allowed to relay (CIDR, space separated, empty for none)",
        "",
        "clients in these networks may send to any domain (your mail server sending \
         outbound), e.g. 10.0.0.0/24; everyone else may send only to your domains",
        |a| {
            // The rules `commit` applies to relay.networks (config::cidr).
            a.split_whitespace().try_for_each(|n| {
                n.parse::<crate::config::Cidr>()
                    .map(|_| ())
                    .map_err(|e| format!("{n}: {e}"))
            })
        }
    ));
    if nets.is_empty() {
        t.remove("relay");
    } else {
        let mut relay = Table::new();
        relay.insert("networks".into(), list(&nets));
        t.insert("relay".into(), Value::Table(relay));
    }
    Answer::Done(())
}

fn ask_tls(term: &mut Term, session: &mut Session, t: &mut Table) -> Answer<()> {
    let tls = get!(ask(
        term,
        "TLS certificate: generate (self-signed ECDSA) or paste (PEM)",
        "generate",
        "generate makes a self-signed certificate now (senders accept it for STARTTLS); \
         paste installs one you have, chain first, then its private key",
        |a| {
            matches!(a, "generate" | "paste")
                .then_some(())
                .ok_or("answer generate or paste".into())
        }
    ));
    if tls == "generate" {
        t.remove("tls");
        return Answer::Done(());
    }
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
                return Answer::Done(());
            }
            Err(e) => print(&format!("  {e}\n  Again.\n")),
        }
    }
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
        "yes records the results in Authentication-Results and enforces DMARC reject \
         policies; it needs DNS servers that resolve Internet names",
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

/// One question; the default is taken on Enter, `?` prints `help`, the answer is checked
/// by `valid` (the rules `commit` applies).
fn ask(
    term: &mut Term,
    question: &str,
    default: &str,
    help: &str,
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
        if answer == "?" {
            print(&format!("  {help}\n"));
            if !default.is_empty() {
                print(&format!("  Enter alone takes [{default}].\n"));
            }
            continue;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_section_to_ask_again() {
        let refused = |e: &str| fault(e);
        assert_eq!(
            refused("error: domain[0].next_hops[1] = \"mx2.x:25\": names this gateway"),
            Some(Section::Domains)
        );
        assert_eq!(
            refused("edgemx.toml: network.address = 10.0.0.1/33: not a network"),
            Some(Section::Network)
        );
        assert_eq!(refused("relay.networks = …: bad"), Some(Section::Relay));
        assert_eq!(refused("the gateway does not answer"), None);
    }

    #[test]
    fn the_first_domain_offered_is_the_host_names() {
        assert_eq!(parent_domain("mx1.Example.net"), "example.net");
        assert_eq!(parent_domain("setup.test"), "");
        assert_eq!(parent_domain("localhost"), "");
    }
}
