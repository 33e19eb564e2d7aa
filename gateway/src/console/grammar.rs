//! The command language: which words may come next after the words typed so far. One
//! function answers `?` help, tab completion and the checking of a line before it runs,
//! so the three never disagree.

use super::candidate::{self, top_choices};
use super::schema::{self, Key, Kind};
use super::words::{Failure, Word};
use toml_edit::{DocumentMut, Item, TableLike};

/// What may follow.
#[derive(Debug, Default)]
pub struct Next {
    /// Fixed words, with a line of help each.
    pub words: Vec<(String, String)>,
    /// A free value (`<SECONDS>`), with help.
    pub free: Option<(String, String)>,
    /// The line may end here.
    pub complete: bool,
}

fn w(word: &str, help: &str) -> (String, String) {
    (word.to_string(), help.to_string())
}

const TOP: &[(&str, &str)] = &[
    ("show", "show configuration, status, queue, log, TLS"),
    ("set", "change a value in the candidate configuration"),
    ("delete", "remove a value (back to its default) or an entry"),
    ("commit", "validate and apply the candidate configuration"),
    (
        "confirm",
        "keep a configuration applied with commit confirmed",
    ),
    ("rollback", "load an earlier revision into the candidate"),
    ("discard", "drop the uncommitted changes"),
    ("export", "print the candidate configuration"),
    (
        "import",
        "replace the candidate by pasted configuration text",
    ),
    ("queue", "act on queued mail"),
    ("test", "show what would happen to mail"),
    ("probe", "connect to a next hop: banner, EHLO, QUIT"),
    (
        "renew-certificate",
        "new self-signed certificate (10 years), in use at once",
    ),
    ("password", "change the admin password"),
    (
        "track",
        "every step of a message: by id, message-id, sender, recipient, client",
    ),
    ("ping", "ICMP echo to a host: is it reachable, how far"),
    ("dns", "look names up through the gateway's nameservers"),
    ("terminal", "terminal settings"),
    (
        "monitor",
        "show log lines as they come (start [LEVEL], stop)",
    ),
    (
        "request",
        "firmware install, rollback and commit; dkim keygen; reports send",
    ),
    ("reboot", "restart the appliance"),
    ("poweroff", "shut the appliance down"),
    (
        "factory-reset",
        "erase configuration and queue; setup runs at next boot",
    ),
    ("help", "how to use the console"),
    ("exit", "log out"),
];

const SHOW: &[(&str, &str)] = &[
    ("running-config", "the configuration in use"),
    ("candidate", "the configuration being edited"),
    ("diff", "changes between running and candidate"),
    ("history", "stored revisions"),
    ("status", "version, uptime, queue, connections"),
    (
        "queue",
        "queued messages: all, one domain, or one message by id",
    ),
    ("log", "recent log lines"),
    (
        "tls",
        "certificate, TLS versions, CPU crypto features; policy DOMAIN",
    ),
    ("health", "up/down state of every next hop"),
    (
        "scan",
        "content scanners: reachable now, last verdicts, latency",
    ),
    ("system", "the appliance: firmware slots"),
    ("message-trace", "every step of a message (as track)"),
    (
        "reports",
        "TLS-RPT and DMARC reports: data waiting, last sends",
    ),
];

const TRACK: &[(&str, &str)] = &[
    ("id", "queue id (16 hex digits, from the 250 reply)"),
    ("message-id", "the Message-ID header, or part of it"),
    ("from", "envelope sender, or part of it (@example.com)"),
    ("to", "a recipient, or part of one"),
    ("client", "the client's address or name"),
    (
        "since",
        "from this time (2026-12-03T18:30) or this long ago (2h)",
    ),
    ("until", "before this time or this long ago"),
];

pub fn next(before: &[&str], doc: &DocumentMut) -> Next {
    let fixed = |list: &[(&str, &str)]| Next {
        words: list.iter().map(|(a, b)| w(a, b)).collect(),
        ..Next::default()
    };
    let free = |name: &str, help: &str, complete: bool| Next {
        free: Some(w(name, help)),
        complete,
        ..Next::default()
    };
    let done = || Next {
        complete: true,
        ..Next::default()
    };
    let track = match before {
        ["track", rest @ ..] => Some(rest),
        ["show", "message-trace", rest @ ..] => Some(rest),
        _ => None,
    };
    if let Some(rest) = track {
        return track_next(rest);
    }
    match before {
        [] => fixed(TOP),
        ["show"] => fixed(SHOW),
        ["show", "queue"] => free(
            "<DOMAIN|ID>",
            "only this domain, or one message (16 hex digits)",
            true,
        ),
        ["show", "log"] => free("<N>", "lines (default 50)", true),
        ["show", "tls"] => Next {
            complete: true,
            ..fixed(&[("policy", "the transport policy for mail to a domain")])
        },
        ["show", "tls", "policy"] => free("<DOMAIN>", "recipient domain", true),
        ["show", "tls", "policy", _] => done(),
        ["show", "queue" | "log", _] => done(),
        ["show", "system"] => fixed(&[("firmware", "both slots, boot state, last update")]),
        ["show", "system", "firmware"] => done(),
        ["show", "system", ..] => Next::default(),
        ["request"] => fixed(&[
            ("firmware", "signed firmware updates (A/B slots)"),
            ("dkim", "DKIM signing keys"),
            ("reports", "TLS-RPT and DMARC aggregate reports"),
        ]),
        ["request", "reports"] => fixed(&[("send", "report everything aggregated, now")]),
        ["request", "reports", "send"] => done(),
        ["request", "dkim"] => fixed(&[(
            "keygen",
            "new signing key; prints the DNS record, adds [[auth.dkim]] to the candidate",
        )]),
        ["request", "dkim", "keygen"] => {
            free("<SELECTOR>", "the s= selector, e.g. edge2026", false)
        }
        ["request", "dkim", "keygen", _] => free("<DOMAIN>", "the d= domain", false),
        ["request", "dkim", "keygen", _, _] => Next {
            words: vec![
                w("rsa", "RSA-2048 (the default; every verifier)"),
                w("ed25519", "Ed25519 (RFC 8463; publish an RSA key too)"),
            ],
            complete: true,
            ..Next::default()
        },
        ["request", "dkim", "keygen", _, _, _] => done(),
        ["request", "firmware"] => fixed(&[
            (
                "install",
                "fetch a signed bundle into the other slot, arm a trial boot",
            ),
            ("rollback", "boot the other (good) slot next"),
            ("commit", "mark the running trial slot good now"),
        ]),
        ["request", "firmware", "install"] => {
            free("<URL>", "http:// or https:// bundle URL", false)
        }
        ["request", "firmware", "install", _] => Next {
            words: vec![w(
                "allow-downgrade",
                "accept a lower version if the bundle permits it",
            )],
            complete: true,
            ..Next::default()
        },
        ["request", "firmware", "install", _, "allow-downgrade"] => done(),
        ["request", "firmware", "rollback" | "commit"] => done(),
        ["show", _] => done(),
        ["set", path @ ..] => path_next(path, doc, true),
        ["delete", path @ ..] => path_next(path, doc, false),
        ["commit"] => Next {
            words: vec![
                w("check", "validate only"),
                w("confirmed", "roll back automatically unless confirmed"),
            ],
            free: Some(w("<COMMENT>", "a note stored with the revision")),
            complete: true,
        },
        ["commit", "confirmed"] => free(
            "<MINUTES>",
            "time to confirm: minutes, or with a unit (90s, 2h)",
            false,
        ),
        ["commit", "check"] => done(),
        ["commit", ..] => free("<COMMENT>", "a note stored with the revision", true),
        ["rollback"] => free(
            "<N>",
            "0 = running (the default), 1 = the revision before, ...",
            true,
        ),
        ["queue"] => fixed(&[
            ("flush", "attempt every message now"),
            ("retry", "attempt one message now"),
            ("delete", "remove a message without a bounce"),
            ("hold", "keep a message from delivery"),
            ("release", "let a held message go"),
        ]),
        ["queue", "flush"] => free("<DOMAIN>", "only this domain (paced)", true),
        ["queue", "hold" | "release"] => {
            free("<ID|DOMAIN|all>", "a message, a domain or all", false)
        }
        ["queue", _] => free("<ID>", "queue id (show queue)", false),
        ["test"] => fixed(&[("route", "route, rewriting and TLS for an address")]),
        ["test", "route"] => free("<ADDRESS>", "user@domain or domain", false),
        ["test", "route", _, rest @ ..] if rest.len() % 2 == 0 => Next {
            words: [
                ("from", "the client's address (relay networks)"),
                ("user", "the user the client authenticated as"),
            ]
            .iter()
            .filter(|(word, _)| !rest.iter().step_by(2).any(|r| r == word))
            .map(|(a, b)| w(a, b))
            .collect(),
            complete: true,
            ..Next::default()
        },
        ["test", "route", _, .., "from"] => free("<IP>", "client address", false),
        ["test", "route", _, .., "user"] => free("<NAME>", "SMTP AUTH user", false),
        ["probe"] => {
            let mut n = free("<HOST[:PORT]>", "next hop", false);
            n.words = hops(doc)
                .into_iter()
                .map(|h| w(&h, "configured next hop"))
                .collect();
            n
        }
        ["ping"] => free("<HOST|IP>", "name or address", false),
        ["ping", _] => Next {
            words: vec![w("count", "echo requests to send (default 4)")],
            complete: true,
            ..Next::default()
        },
        ["ping", _, "count"] => free("<N>", "1 to 100", false),
        ["ping", _, "count", _] => done(),
        ["dns"] => fixed(&[("lookup", "records of a name (PTR for an address)")]),
        ["dns", "lookup"] => free("<NAME|IP>", "a name, or an address for its PTR", false),
        ["dns", "lookup", _] => Next {
            words: crate::control::LOOKUP_TYPES
                .iter()
                .map(|t| w(t, "record type (default A and AAAA)"))
                .collect(),
            complete: true,
            ..Next::default()
        },
        ["dns", "lookup", _, _] => done(),
        ["monitor"] => fixed(&[
            ("start", "show log lines as they come, between commands"),
            ("stop", "stop showing them"),
        ]),
        ["monitor", "start"] => Next {
            words: super::monitor::LEVELS
                .iter()
                .map(|l| w(l, "this level and more severe (default info)"))
                .collect(),
            complete: true,
            ..Next::default()
        },
        ["terminal"] => fixed(&[("length", "lines per page (0: no paging)")]),
        ["terminal", "length"] => free("<LINES>", "0 turns paging off", false),
        [_] | [_, _] | [_, _, _] if is_leaf(before) => done(),
        _ => Next::default(),
    }
}

/// `track` criteria: pairs of a criterion (each once) and its value.
fn track_next(rest: &[&str]) -> Next {
    if rest.len() % 2 == 1 {
        let last = rest[rest.len() - 1];
        let help = TRACK
            .iter()
            .find(|(word, _)| *word == last)
            .map_or("a value", |(_, help)| *help);
        return Next {
            free: Some(w("<VALUE>", help)),
            ..Next::default()
        };
    }
    let given = |word: &str| rest.iter().step_by(2).any(|r| *r == word);
    Next {
        words: TRACK
            .iter()
            .filter(|(word, _)| !given(word))
            .map(|(a, b)| w(a, b))
            .collect(),
        complete: !rest.is_empty(),
        ..Next::default()
    }
}

/// Commands complete in themselves once their fixed arguments are there.
fn is_leaf(before: &[&str]) -> bool {
    matches!(
        before,
        ["confirm"
            | "discard"
            | "export"
            | "import"
            | "password"
            | "reboot"
            | "poweroff"
            | "factory-reset"
            | "renew-certificate"
            | "help"
            | "exit"
            | "quit"
            | "logout"]
            | ["commit", "confirmed", _]
            | ["rollback", _]
            | ["queue", _, _]
            | ["probe", _]
            | ["terminal", "length", _]
            | ["monitor", "stop"]
            | ["monitor", "start", _]
    )
}

fn path_next(path: &[&str], doc: &DocumentMut, setting: bool) -> Next {
    keys_next(schema::root(), Some(doc.as_table()), path, setting, true)
}

/// What may follow `path` inside the section whose keys are `keys`; `place` is that
/// section in the candidate (for the names of its entries), `top` the top of the file.
fn keys_next(
    keys: &'static [Key],
    place: Option<&dyn TableLike>,
    path: &[&str],
    setting: bool,
    top: bool,
) -> Next {
    let listed = |keys: &[Key]| keys.iter().map(|k| w(k.name, k.help)).collect();
    let Some((first, rest)) = path.split_first() else {
        return Next {
            words: listed(keys),
            complete: !setting && !top,
            ..Next::default()
        };
    };
    let Some(key) = schema::find(keys, first) else {
        return Next::default();
    };
    match key.kind {
        Kind::Table(inner) => {
            keys_next(inner, candidate::section(place, key), rest, setting, false)
        }
        Kind::Entries {
            placeholder,
            keys: inner,
            ..
        } => match rest {
            [] => Next {
                words: candidate::entry_ids(place, key)
                    .into_iter()
                    .map(|id| w(&id, "configured"))
                    .collect(),
                free: Some(w(&format!("<{placeholder}>"), key.help)),
                complete: false,
            },
            [_id] => Next {
                words: listed(inner),
                complete: true,
                ..Next::default()
            },
            [id, more @ ..] => keys_next(
                inner,
                candidate::entry(place, key, id),
                more,
                setting,
                false,
            ),
        },
        kind => value_next(kind, rest, setting),
    }
}

fn value_next(kind: Kind, values: &[&str], setting: bool) -> Next {
    if !setting {
        return Next {
            complete: values.is_empty(),
            ..Next::default()
        };
    }
    match (kind, values) {
        (Kind::Enum(choices), []) => Next {
            words: choices.iter().map(|c| w(c, "")).collect(),
            ..Next::default()
        },
        (Kind::SizeOr(word), []) => Next {
            words: vec![w(word, "")],
            free: Some(w(&schema::placeholder(kind), "value")),
            ..Next::default()
        },
        (Kind::Bool, []) => Next {
            words: vec![w("true", ""), w("false", "")],
            ..Next::default()
        },
        (Kind::Map(name, _), []) => Next {
            free: Some(w(&format!("<{name}>"), "name")),
            ..Next::default()
        },
        (Kind::Map(_, value), [_]) => Next {
            free: Some(w(&format!("<{value}>"), "value")),
            ..Next::default()
        },
        (_, []) => Next {
            free: Some(w(&schema::placeholder(kind), "value")),
            ..Next::default()
        },
        (Kind::List(p), _) => Next {
            free: Some(w(&format!("<{p}>"), "another value")),
            complete: true,
            ..Next::default()
        },
        (Kind::Map(..), [_, _]) | (_, [_]) => Next {
            complete: true,
            ..Next::default()
        },
        _ => Next::default(),
    }
}

/// Every next hop named in the configuration (for `probe` completion).
fn hops(doc: &DocumentMut) -> Vec<String> {
    let mut out: Vec<String> = doc
        .get("domain")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(|list| list.iter())
        .filter_map(|d| d.get("next_hops")?.as_array())
        .flatten()
        .filter_map(|h| h.as_str().map(str::to_string))
        .filter(|h| h != "mx")
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Checks every word of a line against [`next`]; the first that does not fit is the error.
/// Unique prefixes of fixed words written out (`sho stat` → `show status`), as Junos
/// accepts them. A prefix of several words is refused with the candidates; where a free
/// value may stand, a word is taken as typed.
pub fn expand(words: &mut [Word], doc: &DocumentMut) -> Result<(), Failure> {
    for i in 0..words.len() {
        let before: Vec<String> = words[..i].iter().map(|w| w.text.clone()).collect();
        let before: Vec<&str> = before.iter().map(String::as_str).collect();
        let n = next(&before, doc);
        let typed = words[i].text.as_str();
        if n.free.is_some() || n.words.iter().any(|(word, _)| word == typed) {
            continue;
        }
        let fits: Vec<&String> = n
            .words
            .iter()
            .map(|(word, _)| word)
            .filter(|word| word.starts_with(typed))
            .collect();
        match fits.as_slice() {
            [one] => words[i].text = one.to_string(),
            [] => {}
            many => {
                let mut choices: Vec<String> = many.iter().map(|w| w.to_string()).collect();
                choices.sort();
                let mut failure =
                    Failure::at(i, format!("\"{typed}\" is ambiguous")).choices(choices);
                failure.suggest = false;
                return Err(failure);
            }
        }
    }
    Ok(())
}

pub fn check(words: &[Word], doc: &DocumentMut) -> Result<(), Failure> {
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    for i in 0..texts.len() {
        let n = next(&texts[..i], doc);
        if n.words.iter().any(|(word, _)| word == texts[i]) || n.free.is_some() {
            continue;
        }
        let choices: Vec<String> = n.words.iter().map(|(w, _)| w.clone()).collect();
        let message = if choices.is_empty() && n.complete {
            format!(
                "nothing is expected after \"{}\"",
                texts[i.saturating_sub(1)]
            )
        } else {
            format!("unknown word \"{}\"", texts[i])
        };
        return Err(Failure::at(i, message).choices(choices));
    }
    let n = next(&texts, doc);
    if !n.complete {
        let mut choices: Vec<String> = n.words.iter().map(|(w, _)| w.clone()).collect();
        choices.extend(n.free.map(|(f, _)| f));
        if texts.is_empty() {
            choices = top_choices();
        }
        return Err(Failure::end("the command is incomplete").choices(choices));
    }
    Ok(())
}

/// `?` help for a line: what may come in place of the word being typed (or next, after a
/// blank).
pub fn help(line: &str, doc: &DocumentMut) -> String {
    let words = super::words::split(line);
    let mut texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let partial = if line.ends_with(char::is_whitespace) || line.is_empty() {
        ""
    } else {
        texts.pop().unwrap_or("")
    };
    let n = next(&texts, doc);
    let mut rows: Vec<(String, String)> = n
        .words
        .into_iter()
        .filter(|(w, _)| w.starts_with(partial))
        .collect();
    if let Some(free) = n.free {
        rows.push(free);
    }
    if n.complete && partial.is_empty() {
        rows.push(w("<Enter>", "run the command"));
    }
    if rows.is_empty() {
        return format!("no word starting with \"{partial}\" fits here\n");
    }
    let width = rows.iter().map(|(w, _)| w.len()).max().unwrap_or(0).min(28);
    rows.iter()
        .map(|(w, h)| format!("  {w:<width$}  {h}\n").replace(" \n", "\n"))
        .collect()
}

/// Tab completion: the fixed words that start with the word being typed.
pub fn complete(line: &str, doc: &DocumentMut) -> (usize, Vec<String>) {
    let words = super::words::split(line);
    let mut texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let (start, partial) = if line.ends_with(char::is_whitespace) || line.is_empty() {
        (line.len(), "")
    } else {
        let last = words.last().map(|w| w.at).unwrap_or(0);
        (
            line.char_indices().nth(last).map_or(0, |(i, _)| i),
            texts.pop().unwrap_or(""),
        )
    };
    let found = next(&texts, doc)
        .words
        .into_iter()
        .map(|(w, _)| w)
        .filter(|w| w.starts_with(partial))
        .collect();
    (start, found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::words::split;

    #[test]
    fn check_names_the_word_and_the_choices() {
        let t = DocumentMut::new();
        let e = check(&split("show runing-config"), &t).unwrap_err();
        assert_eq!(e.word, Some(1));
        assert!(e.choices.contains(&"running-config".to_string()));
        let e = check(&split("commit confirmed"), &t).unwrap_err();
        assert_eq!(e.word, None);
        assert!(check(&split("commit confirmed 60"), &t).is_ok());
        assert!(
            check(
                &split("set domain a.test next_hops 10.0.0.1:25 10.0.0.2:25"),
                &t
            )
            .is_ok()
        );
        assert!(check(&split("set domain a.test tls"), &t).is_err());
        for line in [
            "show queue",
            "show queue a.test",
            "show queue 0000000000000001",
        ] {
            assert!(check(&split(line), &t).is_ok(), "{line}");
        }
        assert!(check(&split("show log 20"), &t).is_ok());
        assert!(check(&split("show queue a.test b.test"), &t).is_err());
        assert!(check(&split("reboot now"), &t).is_err());
    }

    #[test]
    fn reports_are_shown_and_sent_on_request() {
        let t = DocumentMut::new();
        let ok = |line: &str| check(&split(line), &t).is_ok();
        assert!(ok("show reports") && ok("request reports send"));
        assert!(!ok("request reports") && !ok("request reports send now"));
    }

    #[test]
    fn firmware_commands_take_a_url_and_an_optional_allow_downgrade() {
        let t = DocumentMut::new();
        let ok = |line: &str| check(&split(line), &t).is_ok();
        assert!(ok("show system firmware"));
        assert!(ok(
            "request firmware install http://10.0.2.101/edgemx.bundle"
        ));
        assert!(ok(
            "request firmware install https://u.test/b allow-downgrade"
        ));
        assert!(ok("request firmware rollback") && ok("request firmware commit"));
        assert!(!ok("request firmware install"), "the URL is required");
        assert!(!ok("request firmware install http://x/b now"));
        assert!(!ok("request firmware commit now") && !ok("show system"));
    }

    #[test]
    fn every_section_of_the_configuration_is_a_path() {
        let t = DocumentMut::new();
        let top = help("set ", &t);
        for section in [
            "route", "routing", "auth", "flow", "admin", "control", "boot",
        ] {
            assert!(top.contains(&format!("  {section} ")), "{section}: {top}");
        }
        let ok = |line: &str| check(&split(line), &t).is_ok();
        assert!(ok("set route onprem next_hops 10.0.0.1:25 mx"));
        assert!(ok("set routing callout timeout 5s"));
        assert!(ok("set routing masquerade *.corp.example.com example.com"));
        assert!(!ok("set routing masquerade *.corp.example.com"), "a pair");
        assert!(ok("delete routing masquerade"));
        assert!(ok("set auth dkim edge2026r key /data/k.pem"));
        assert!(ok("set admin probe probe@example.com interval 60s"));
        assert!(ok("set flow max_hops 30") && ok("set control group 0"));
        assert!(!ok("set routing callout nonsense 1"));
        assert!(help("set auth dkim ", &t).contains("<SELECTOR>"));
        let (_, found) = complete("set routing callout neg", &t);
        assert_eq!(found, vec!["negative_ttl".to_string()]);
    }

    #[test]
    fn help_and_completion_agree() {
        let t = DocumentMut::new();
        assert!(help("show ", &t).contains("running-config"));
        assert!(help("sh", &t).contains("show"));
        let (start, found) = complete("set dom", &t);
        assert_eq!((start, found), (4, vec!["domain".to_string()]));
    }
}
