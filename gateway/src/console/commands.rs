//! Running one command line: configuration editing and commits (`config_cmds.rs` holds
//! those), operations, and the appliance's power commands.

use super::candidate;
use super::link::Link;
use super::render;
use super::term::{Term, print};
use super::words::{Failure, Word, split};
use super::{grammar, login, pipe};
use crate::control::reply::{self, Committed, FirmwareStatus, RevisionText, Running};
use crate::control::{ConsoleRequest, Request};
use crate::envelope::{Envelope, QueueId};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use toml_edit::DocumentMut;

pub struct Session {
    pub link: Link,
    pub running: DocumentMut,
    pub candidate: DocumentMut,
    pub hostname: String,
    /// Lines per page; 0 turns the pager off.
    pub page: usize,
    pub passwd: Option<PathBuf>,
    /// Inside the image: reboot, poweroff and factory-reset act on the machine.
    pub appliance: bool,
    /// `monitor start`: log lines shown as they come, until `monitor stop` or logout.
    pub monitor: Option<super::monitor::Monitor>,
}

pub enum Outcome {
    Continue,
    Exit,
}

type Done = Result<(), Failure>;

impl Session {
    /// Reads the running configuration; the candidate starts equal to it.
    pub fn load(&mut self) -> Result<(), String> {
        let v: Running = self.link.console(ConsoleRequest::Running)?;
        self.running = candidate::document(&v.text)?;
        self.candidate = self.running.clone();
        self.hostname = self
            .running
            .get("hostname")
            .and_then(|h| h.as_str())
            .unwrap_or("edgemx")
            .to_string();
        Ok(())
    }

    /// Follows commits made elsewhere (another console, an automatic rollback): the
    /// running copy is fetched again, and a candidate without changes moves along with it.
    fn refresh(&mut self) {
        let Ok(v) = self.link.console::<Running>(ConsoleRequest::Running) else {
            return;
        };
        let Ok(running) = candidate::document(&v.text) else {
            return;
        };
        if running.to_string() != self.running.to_string() {
            if !self.changed() {
                self.candidate = running.clone();
            }
            self.running = running;
        }
    }

    pub fn prompt(&self) -> String {
        let mark = if self.changed() { '#' } else { '>' };
        format!("{}{mark} ", self.hostname)
    }

    /// Compared as text: a comment changed by `import` or `rollback` is a change too.
    pub fn changed(&self) -> bool {
        self.candidate.to_string() != self.running.to_string()
    }

    pub fn run(&mut self, term: &mut Term, line: &str) -> Outcome {
        let mut words = split(line);
        if words.is_empty() {
            return Outcome::Continue;
        }
        if line.trim_end().ends_with('?') && !line.contains('"') {
            let upto = line.trim_end().trim_end_matches('?');
            match upto
                .rfind(" | ")
                .or_else(|| upto.starts_with("| ").then_some(0))
            {
                Some(_) => print(&pipe::help()),
                None => print(&grammar::help(upto, &self.candidate)),
            }
            return Outcome::Continue;
        }
        self.refresh();
        let all = words.clone();
        let result = pipe::split_off(&mut words).and_then(|pipe| {
            grammar::expand(&mut words, &self.candidate)?;
            grammar::check(&words, &self.candidate)?;
            let Some((at, pipe)) = pipe else {
                return self.dispatch(term, &words);
            };
            if !matches!(
                words[0].text.as_str(),
                "show" | "test" | "probe" | "export" | "track" | "dns"
            ) {
                return Err(Failure::at(
                    at,
                    "output pipes follow show, test, probe, export, track and dns",
                ));
            }
            super::term::capture();
            let ran = self.dispatch(term, &words);
            let held = super::term::captured();
            ran?;
            let (text, more) = pipe.apply(&held);
            term.page(&text, if more { self.page } else { 0 });
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(f) if f.message == "exit" => return Outcome::Exit,
            Err(f) => print(&f.render(self.prompt().chars().count(), line, &all)),
        }
        Outcome::Continue
    }

    fn dispatch(&mut self, term: &mut Term, words: &[Word]) -> Done {
        let w: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        match w.as_slice() {
            ["show", "system", "firmware"] => {
                let v: FirmwareStatus = self.firmware(crate::firmware::ops::FirmwareOp::Status)?;
                print(&crate::firmware::ops::format_status(&v));
                Ok(())
            }
            [
                "request",
                "dkim",
                "keygen",
                selector,
                domain,
                algorithm @ ..,
            ] => {
                let reply::Done(record) = self.ask(ConsoleRequest::DkimKeygen {
                    domain: domain.to_string(),
                    selector: selector.to_string(),
                    ed25519: algorithm == ["ed25519"],
                })?;
                print(&format!("publish this record in DNS:\n{record}\n"));
                let entry = split(&format!("set auth dkim {selector} domain {domain}"));
                match candidate::set_words(&mut self.candidate, &entry[1..]) {
                    Ok(()) => print(
                        "[[auth.dkim]] added to the candidate: commit once the record is \
                         published (`dns lookup SELECTOR._domainkey.DOMAIN txt` shows it)\n",
                    ),
                    Err(f) => print(&format!(
                        "add [[auth.dkim]] selector {selector} domain {domain}: {}\n",
                        f.message
                    )),
                }
                Ok(())
            }
            ["request", "reports", "send"] => {
                let v: reply::ReportsStatus = self.ask(ConsoleRequest::Reports { send: true })?;
                print(&v.sent_text());
                Ok(())
            }
            ["request", "firmware", action, rest @ ..] => {
                use crate::firmware::ops::FirmwareOp;
                let op = match (*action, rest) {
                    ("install", [url, more @ ..]) => FirmwareOp::Install {
                        url: url.to_string(),
                        allow_downgrade: more == ["allow-downgrade"],
                    },
                    ("rollback", _) => FirmwareOp::Rollback,
                    _ => FirmwareOp::Commit,
                };
                if matches!(op, FirmwareOp::Install { .. }) {
                    print("verifying the bundle, then writing it into the other slot ...\n");
                }
                let reply::Done(text) = self.firmware(op)?;
                print(&format!("{text}\n"));
                Ok(())
            }
            ["show", "message-trace", criteria @ ..] => self.track(term, criteria),
            ["show", what, rest @ ..] => self.show(term, what, rest),
            ["set", ..] => self.set(words),
            ["delete", ..] => self.delete(words),
            ["commit", ..] => self.commit(&w[1..]),
            ["confirm"] => self.say(ConsoleRequest::Confirm),
            ["rollback", n] => self.rollback(n),
            // As in Junos, `rollback` alone is `rollback 0`: the candidate is the running
            // configuration again.
            ["rollback"] => self.rollback("0"),
            ["discard"] => {
                self.candidate = self.running.clone();
                print("candidate reset to the running configuration\n");
                Ok(())
            }
            ["export"] => {
                term.page(&candidate::render(&self.candidate), self.page);
                Ok(())
            }
            ["import"] => self.import(term),
            ["renew-certificate"] => {
                print(&render::tls(&self.ask(ConsoleRequest::RenewCert)?));
                Ok(())
            }
            ["queue", action, rest @ ..] => self.queue(action, rest.first().copied()),
            ["test", "route", address, rest @ ..] => {
                let (mut client, mut user) = (None, None);
                for (i, pair) in rest.chunks(2).enumerate() {
                    match pair {
                        ["from", ip] => {
                            client = Some(ip.parse().map_err(|_| {
                                Failure::at(4 + 2 * i, format!("\"{ip}\" is not an IP address"))
                            })?)
                        }
                        ["user", name] => user = Some(name.to_string()),
                        _ => return Err(Failure::at(3 + 2 * i, "from IP or user NAME")),
                    }
                }
                let v = self.ask(ConsoleRequest::Route {
                    address: address.to_string(),
                    client,
                    user,
                })?;
                print(&render::route(&v));
                Ok(())
            }
            ["probe", hop] => {
                print(&format!("probing {hop} ...\n"));
                let v = self.ask(ConsoleRequest::Probe {
                    hop: hop.to_string(),
                })?;
                print(&render::probe(&v));
                Ok(())
            }
            ["terminal", "length", n] => {
                self.page = n
                    .parse()
                    .map_err(|_| Failure::at(2, format!("\"{n}\" is not a number")))?;
                Ok(())
            }
            ["monitor", "start", level @ ..] => {
                let level = match level.first() {
                    Some(word) => {
                        super::monitor::level(word).ok_or_else(|| Failure::at(2, "not a level"))?
                    }
                    None => "info",
                };
                // A second start changes the level: the old follower stops first.
                self.monitor = None;
                self.monitor = Some(super::monitor::Monitor::start(
                    self.link.path().to_path_buf(),
                    level,
                    term.activity.clone(),
                ));
                print(&format!(
                    "showing log lines of level {level} and above as they come; \
                     `monitor stop` ends it\n"
                ));
                Ok(())
            }
            ["monitor", "stop"] => {
                match self.monitor.take() {
                    Some(_) => print("log lines are no longer shown\n"),
                    None => print("the log was not being shown\n"),
                }
                Ok(())
            }
            ["dns", "lookup", name, kind @ ..] => {
                let lines: Vec<String> = self.ask(ConsoleRequest::DnsLookup {
                    name: name.to_string(),
                    kind: kind.first().copied().unwrap_or("").to_string(),
                })?;
                term.page(&(lines.join("\n") + "\n"), self.page);
                Ok(())
            }
            ["ping", host, rest @ ..] => self.ping(host, rest),
            ["track", criteria @ ..] => self.track(term, criteria),
            ["password"] => self.password(term),
            ["reboot"] => super::power::reboot(term, self.appliance, false),
            ["poweroff"] => super::power::reboot(term, self.appliance, true),
            ["factory-reset"] => super::power::factory_reset(term, self.appliance),
            ["help"] => {
                print(HELP);
                Ok(())
            }
            ["exit" | "quit" | "logout"] => Err(Failure::plain("exit")),
            _ => Err(Failure::at(0, "not a command").choices(
                grammar::next(&[], &self.candidate)
                    .words
                    .into_iter()
                    .map(|(w, _)| w)
                    .collect(),
            )),
        }
    }

    fn show(&mut self, term: &mut Term, what: &str, rest: &[&str]) -> Done {
        let text = match what {
            "running-config" => candidate::render(&self.running),
            "candidate" => candidate::render(&self.candidate),
            "diff" => {
                let d = candidate::diff(
                    &candidate::render(&self.running),
                    &candidate::render(&self.candidate),
                );
                if d.is_empty() {
                    "no uncommitted changes\n".to_string()
                } else {
                    d
                }
            }
            "history" => render::history(&self.ask::<Vec<_>>(ConsoleRequest::History)?),
            "status" => {
                let mut text = render::status(&self.ask(ConsoleRequest::Status)?);
                text.push_str(&self.status_more());
                text
            }
            "tls" => match rest {
                ["policy", domain] => {
                    let domain = domain.to_string();
                    render::tls_policy(&self.ask(ConsoleRequest::TlsPolicy { domain })?)
                }
                ["policy"] => return Err(Failure::at(3, "show tls policy DOMAIN")),
                _ => render::tls(&self.ask(ConsoleRequest::Tls)?),
            },
            "scan" => render::scan(&self.ask(ConsoleRequest::Scan)?),
            "reports" => self
                .ask::<reply::ReportsStatus>(ConsoleRequest::Reports { send: false })?
                .text(),
            "health" => {
                let v: Vec<_> = self.link.ask(&Request::Health).map_err(Failure::plain)?;
                let text = crate::control::format_health(&v);
                if text.is_empty() {
                    "no next hops watched yet\n".into()
                } else {
                    text
                }
            }
            "log" => {
                let lines = match rest.first() {
                    Some(n) => n
                        .parse()
                        .map_err(|_| Failure::at(2, format!("\"{n}\" is not a number")))?,
                    None => 50,
                };
                let lines: Vec<String> = self.ask(ConsoleRequest::Log { lines })?;
                if lines.is_empty() {
                    "(no log lines kept yet)\n".into()
                } else {
                    lines.join("\n") + "\n"
                }
            }
            "queue" => match rest.first().copied().and_then(queue_id) {
                Some(id) => {
                    let v = self
                        .link
                        .ask(&Request::Show { id })
                        .map_err(Failure::plain)?;
                    crate::control::format_show(&v)
                }
                None => self.queue_text(rest.first().copied())?,
            },
            _ => return Err(Failure::at(1, "unknown")),
        };
        term.page(&text, self.page);
        Ok(())
    }

    fn set(&mut self, words: &[Word]) -> Done {
        candidate::set_words(&mut self.candidate, &words[1..])
    }

    fn delete(&mut self, words: &[Word]) -> Done {
        candidate::delete_words(&mut self.candidate, &words[1..])
    }

    fn commit(&mut self, args: &[&str]) -> Done {
        let text = candidate::render(&self.candidate);
        if args.first() == Some(&"check") {
            self.ask::<reply::Done>(ConsoleRequest::Check { text })
                .map_err(|f| self.translate(f))?;
            print("configuration check succeeds\n");
            return Ok(());
        }
        let (confirm, comment) = match args {
            ["confirmed", time, rest @ ..] => (Some(confirm_within(time)?), rest.join(" ")),
            rest => (None, rest.join(" ")),
        };
        let comment = if comment.is_empty() {
            "console commit".to_string()
        } else {
            comment
        };
        let v: Committed = self
            .ask(ConsoleRequest::Commit {
                text,
                comment,
                confirm,
            })
            .map_err(|f| self.translate(f))?;
        self.running = self.candidate.clone();
        if let Some(h) = self.running.get("hostname").and_then(|h| h.as_str()) {
            self.hostname = h.to_string();
        }
        print(&format!(
            "commit complete: revision {}\n",
            v.revision.number
        ));
        if let Some(secs) = v.rollback_in {
            print(&format!(
                "rolls back in {secs} s unless you type `confirm`\n"
            ));
        }
        if !v.restart.is_empty() {
            print(&format!(
                "takes effect when the gateway next starts: {}\n",
                v.restart.join(", ")
            ));
        }
        Ok(())
    }

    /// Validation errors name TOML keys (`domain[0].next_hops[1]`); say them as paths.
    fn translate(&self, f: Failure) -> Failure {
        let mut message = f.message.clone();
        for (toml, path) in candidate::entry_names(&self.candidate) {
            message = message.replace(&toml, &path);
        }
        Failure::plain(format!("commit failed:\n{message}"))
    }

    fn rollback(&mut self, n: &str) -> Done {
        let back: usize = n
            .parse()
            .map_err(|_| Failure::at(1, format!("\"{n}\" is not a number (0 = running)")))?;
        let v: RevisionText = self.ask(ConsoleRequest::Revision { back })?;
        self.candidate = candidate::document(&v.text).map_err(Failure::plain)?;
        print(&format!(
            "revision {} loaded into the candidate; `show diff` to review, `commit` to apply\n",
            v.revision.number
        ));
        Ok(())
    }

    fn import(&mut self, term: &mut Term) -> Done {
        print("Paste the configuration, then a line with a single \".\" (Ctrl-C cancels):\n");
        let Some(text) = term.block(".") else {
            return Err(Failure::plain(
                "import cancelled; the candidate is unchanged",
            ));
        };
        let doc = candidate::document(&text)
            .map_err(|e| Failure::plain(format!("not TOML: {e}; the candidate is unchanged")))?;
        let check = self.link.console::<reply::Done>(ConsoleRequest::Check {
            text: candidate::render(&doc),
        });
        self.candidate = doc;
        match check {
            Ok(_) => print("imported into the candidate; `show diff`, then `commit`\n"),
            Err(e) => print(&format!(
                "imported, but it will not commit as it is:\n{e}\n"
            )),
        }
        Ok(())
    }

    fn queue(&mut self, action: &str, id: Option<&str>) -> Done {
        use crate::delivery::Target;
        let parse = |id: Option<&str>| -> Result<QueueId, Failure> {
            id.unwrap_or("")
                .parse()
                .map_err(|e: String| Failure::at(2, e))
        };
        // A queue id (16 hex digits), `all`, or a domain.
        let target = |word: Option<&str>| -> Result<Target, Failure> {
            match word {
                None | Some("all") => Ok(Target::All),
                Some(w) if w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()) => {
                    Ok(Target::Message(parse(Some(w))?))
                }
                Some(w) if crate::config::valid_hostname(w) => Ok(Target::Domain {
                    name: w.to_ascii_lowercase(),
                    subdomains: false,
                }),
                Some(w) => Err(Failure::at(
                    2,
                    format!("\"{w}\" is not a queue id, a domain or `all`"),
                )),
            }
        };
        let request = match action {
            "flush" => Request::Flush {
                target: target(id)?,
            },
            "retry" if id == Some("all") => Request::Retry { id: None },
            "retry" => Request::Retry {
                id: Some(parse(id)?),
            },
            "delete" => Request::Delete { id: parse(id)? },
            "hold" => Request::Hold {
                target: target(id)?,
            },
            "release" => Request::Release {
                target: target(id)?,
            },
            _ => return Err(Failure::at(1, format!("queue {action} is not available"))),
        };
        let reply::Done(text) = self.link.ask(&request).map_err(Failure::plain)?;
        print(&format!("{text}\n"));
        Ok(())
    }

    fn queue_text(&mut self, domain: Option<&str>) -> Result<String, Failure> {
        let domain = domain.map(str::to_ascii_lowercase);
        let mut listed: Vec<Envelope> = Vec::new();
        let each = |page: &[Envelope]| {
            let wanted = |e: &&Envelope| match &domain {
                Some(d) => e.recipients.iter().any(|r| &r.domain == d),
                None => true,
            };
            listed.extend(page.iter().filter(wanted).cloned());
        };
        self.link.each_page(each).map_err(Failure::plain)?;
        Ok(crate::control::format_list(&listed))
    }

    fn password(&mut self, term: &mut Term) -> Done {
        let Some(path) = self.passwd.clone() else {
            return Err(Failure::plain(
                "this console has no admin account (started without --login)",
            ));
        };
        // Someone at an unattended logged-in console must not take the account over.
        if login::exists(&path) {
            let current = term.secret("Current admin password: ");
            if !current.is_some_and(|c| login::check(&path, &c)) {
                return Err(Failure::plain(
                    "that is not the current password; password unchanged",
                ));
            }
        }
        let Some(plain) = login::choose(term) else {
            return Err(Failure::plain("password unchanged"));
        };
        login::set(&path, &plain)
            .map_err(|e| Failure::plain(format!("cannot store the password: {e}")))?;
        print("password changed\n");
        Ok(())
    }

    fn ask<T: DeserializeOwned>(&mut self, call: ConsoleRequest) -> Result<T, Failure> {
        self.link.console(call).map_err(Failure::plain)
    }

    /// `track CRITERION VALUE …` (also `show message-trace …`): every step of the
    /// matching messages from the gateway's kept log.
    fn track(&mut self, term: &mut Term, criteria: &[&str]) -> Done {
        use crate::observe::track::{self, Query, Trail};
        let mut query = Query::default();
        for (i, pair) in criteria.chunks(2).enumerate() {
            let at = 1 + 2 * i;
            let [what, value] = pair else {
                return Err(Failure::at(at, "a value must follow"));
            };
            let value = value.to_string();
            let bound = |v: &str| track::time_bound(v).map_err(|e| Failure::at(at + 1, e));
            match *what {
                "id" => query.id = Some(value),
                "message-id" => query.message_id = Some(value),
                "from" => query.from = Some(value),
                "to" => query.to = Some(value),
                "client" => query.client = Some(value),
                "since" => query.since = Some(bound(&value)?),
                "until" => query.until = Some(bound(&value)?),
                _ => return Err(Failure::at(at, "not a tracking criterion")),
            }
        }
        if !query.names_a_message() {
            return Err(Failure::at(
                0,
                "say what to track: id, message-id, from, to or client",
            ));
        }
        let trails: Vec<Trail> = self.ask(ConsoleRequest::Track { query })?;
        term.page(&track::format(&trails), self.page);
        Ok(())
    }

    /// `ping HOST [count N]`: a name is resolved through the gateway's nameservers.
    fn ping(&mut self, host: &str, rest: &[&str]) -> Done {
        let count = match rest {
            ["count", n] => n
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| Failure::at(3, "a count from 1 to 100"))?,
            _ => 4,
        };
        let ip = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let lines: Vec<String> = self.ask(ConsoleRequest::DnsLookup {
                    name: host.to_string(),
                    kind: String::new(),
                })?;
                lines
                    .iter()
                    .find_map(|l| l.rsplit(' ').next()?.parse().ok())
                    .ok_or_else(|| Failure::at(1, format!("{host} has no address")))?
            }
        };
        print(&format!("PING {host} ({ip}): {count} echo requests\n"));
        let mut rtts = Vec::new();
        super::ping::run(ip, count, |o| {
            match o.rtt {
                Some(rtt) => {
                    rtts.push(rtt);
                    print(&format!(
                        "reply from {ip}: seq={} time={:.3} ms\n",
                        o.seq,
                        rtt.as_secs_f64() * 1e3
                    ))
                }
                None => print(&format!("no reply for seq={} within 1 s\n", o.seq)),
            };
        })
        .map_err(Failure::plain)?;
        print(&super::ping::summary(ip, count, rtts.len() as u16, &rtts));
        Ok(())
    }

    /// `show status` beyond the gateway's own counters: the clock, the addresses, the
    /// next hops' states and, on the appliance, the firmware slot.
    fn status_more(&mut self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "clock         {}", super::machine::clock());
        if let Some(sync) = super::machine::time_sync() {
            let _ = writeln!(out, "time sync     {sync}");
        }
        let addresses = super::machine::addresses();
        let _ = writeln!(
            out,
            "addresses     {}",
            if addresses.is_empty() {
                "(none but loopback)".into()
            } else {
                addresses.join(", ")
            }
        );
        if let Ok(hops) = self
            .link
            .ask::<Vec<crate::delivery::health::HopHealth>>(&Request::Health)
        {
            let (up, down): (Vec<_>, Vec<_>) = hops
                .iter()
                .partition(|h| h.state == crate::delivery::health::State::Up);
            let names = |v: &[&crate::delivery::health::HopHealth]| {
                v.iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = match (up.len(), down.len()) {
                (0, 0) => writeln!(out, "next hops     none watched yet"),
                (_, 0) => writeln!(out, "next hops     {} up", up.len()),
                _ => writeln!(
                    out,
                    "next hops     {} up, {} DOWN: {}",
                    up.len(),
                    down.len(),
                    names(&down)
                ),
            };
        }
        if self.appliance {
            let firmware: Result<FirmwareStatus, _> =
                self.firmware(crate::firmware::ops::FirmwareOp::Status);
            let _ = match firmware {
                Ok(f) => {
                    let booted = f.slots.iter().find(|s| s.booted);
                    writeln!(
                        out,
                        "firmware      slot {} ({}){}",
                        f.booted.as_deref().unwrap_or("?"),
                        booted.map_or("unknown", |s| s.state.as_str()),
                        booted
                            .and_then(|s| s.build.as_deref())
                            .map_or(String::new(), |b| format!(", build {b}"))
                    )
                }
                Err(e) => writeln!(out, "firmware      {}", e.message),
            };
        }
        out
    }

    fn firmware<T: DeserializeOwned>(
        &mut self,
        op: crate::firmware::ops::FirmwareOp,
    ) -> Result<T, Failure> {
        // A failed install is reported as what it is, not as a console error.
        self.ask(ConsoleRequest::Firmware { op })
            .map_err(|f| Failure::plain(format!("firmware: {}", f.message)))
    }

    fn say(&mut self, call: ConsoleRequest) -> Done {
        let reply::Done(text) = self.ask(call)?;
        print(&format!("{text}\n"));
        Ok(())
    }
}

const HELP: &str = "\
Type a command and Enter. `?` lists what may come next, Tab completes a word, the arrow
keys recall and edit earlier lines, Ctrl-C drops the line, Ctrl-D or `exit` logs out.

Configuration is edited in a candidate and applied with commit:
  set domain example.com next_hops 10.0.0.5:25    add or change a value
  delete domain example.com                        remove an entry (or a key: its default)
  show diff | show candidate | show running-config
  commit [COMMENT] | commit check | commit confirmed MINUTES (or 90s, 2h), then confirm
  rollback [N] (0 or nothing = running, 1 = previous) | discard | show history | export | import
Operations: show status | show queue [DOMAIN|ID] | show log [N] | show tls | renew-certificate
  monitor start [error|warn|info|debug] | monitor stop     log lines as they come
  queue flush [DOMAIN] | queue retry ID | queue delete ID | queue hold|release ID|DOMAIN|all
  show health | test route ADDRESS [from IP] [user NAME] | probe HOST:PORT
  ping HOST [count N] | dns lookup NAME|IP [TYPE] | request dkim keygen SELECTOR DOMAIN
  track id|message-id|from|to|client VALUE [since|until TIME]  every step of a message
  reboot | poweroff | factory-reset | password | terminal length N
";

/// A queue id as `show queue` prints it (16 hex digits); anything else is a domain.
fn queue_id(word: &str) -> Option<QueueId> {
    let id = word.len() == 16 && word.bytes().all(|b| b.is_ascii_hexdigit());
    id.then(|| word.parse().ok()).flatten()
}

/// The time `commit confirmed` waits for `confirm`, in seconds: minutes as in Junos
/// (`commit confirmed 5`), or with a unit (`90s`, `2h`); from 1 s to one day.
fn confirm_within(time: &str) -> Result<u64, Failure> {
    let seconds = match time.parse::<u64>() {
        Ok(minutes) => minutes.checked_mul(60),
        Err(_) => crate::config::parse_span(time).ok().map(|d| d.as_secs()),
    };
    seconds.filter(|s| (1..=86_400).contains(s)).ok_or_else(|| {
        Failure::at(
            2,
            format!("\"{time}\" is not a time from 1s to 1 day (minutes, or with a unit: 90s, 2h)"),
        )
    })
}

#[cfg(test)]
mod confirm_tests {
    #[test]
    fn confirmed_takes_minutes_or_a_unit() {
        assert_eq!(super::confirm_within("5").unwrap(), 300);
        assert_eq!(super::confirm_within("90s").unwrap(), 90);
        assert_eq!(super::confirm_within("2h").unwrap(), 7_200);
        for bad in ["0", "0s", "2d", "1441", "soon"] {
            assert!(super::confirm_within(bad).is_err(), "{bad}");
        }
    }
}
