//! Message tracking, as Cisco's message tracking and Proxmox's tracking center do it: every
//! step of a message — received (client, sender, recipients, Message-ID, SPF/DKIM/DMARC
//! verdicts, TLS), scanned, queued, each delivery attempt with the next hop's reply,
//! delivered, deferred or bounced — found in the kept log by queue id, Message-ID, sender,
//! recipient or client address, within a time range.
//!
//! The log is the record: each step is one line naming the queue id, and the `queued` line
//! carries every field searched by (`queued ID from=<…> … client=… to=<…> msgid=<…>
//! auth=…`). The log file is rotated with a size cap, so tracking reaches as far back as
//! `[log] max_size × (keep + 1)` holds.

use serde::{Deserialize, Serialize};

/// What to look for; every field given must match (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    /// The envelope sender, or part of it (`@example.com`).
    #[serde(default)]
    pub from: Option<String>,
    /// A recipient, or part of one.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
    /// Lines at or after this time (`2026-12-03T18`, any prefix of the log's timestamps).
    #[serde(default)]
    pub since: Option<String>,
    /// Lines before this time (same form).
    #[serde(default)]
    pub until: Option<String>,
}

impl Query {
    /// Whether it names something to track (a time range alone does not).
    pub fn names_a_message(&self) -> bool {
        [
            &self.id,
            &self.message_id,
            &self.from,
            &self.to,
            &self.client,
        ]
        .iter()
        .any(|field| field.is_some())
    }
}

/// One message's steps, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trail {
    pub id: String,
    pub lines: Vec<String>,
}

/// A time bound as typed: a timestamp prefix (`2026-12-03`, `2026-12-03T18:30`) as is,
/// or a span back from now (`30m`, `2h`, `1d`).
pub fn time_bound(text: &str) -> Result<String, String> {
    if text.len() >= 4 && text.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return Ok(text.to_string());
    }
    let ago = crate::config::parse_span(text)
        .map_err(|_| format!("{text}: a time (2026-12-03T18:30) or a span back (2h, 1d)"))?;
    Ok(crate::time::iso8601(
        crate::time::unix_now().saturating_sub(ago.as_secs()),
    ))
}

/// Trails as the console and `edgemx log search` print them.
pub fn format(trails: &[Trail]) -> String {
    if trails.is_empty() {
        return "no message matches (the log kept reaches back to its oldest line)\n".into();
    }
    let mut out = String::new();
    for trail in trails {
        out.push_str(&format!("message {}\n", trail.id));
        for line in &trail.lines {
            // `TIME LEVEL text` → `TIME text`: every step is INFO or worse anyway.
            let mut words = line.splitn(3, ' ');
            let (time, level, text) = (
                words.next().unwrap_or(""),
                words.next().unwrap_or(""),
                words.next().unwrap_or("").trim_start(),
            );
            let mark = if level == "INFO" { "" } else { "[!] " };
            out.push_str(&format!("  {time} {mark}{text}\n"));
        }
    }
    out
}

/// The trails of at most `limit` messages matching `query` in `lines` (oldest first), the
/// newest messages kept when more match.
pub fn search(query: &Query, lines: impl Iterator<Item = String>, limit: usize) -> Vec<Trail> {
    let in_range = |line: &str| {
        let stamp = line.split_whitespace().next().unwrap_or("");
        query.since.as_deref().is_none_or(|s| stamp >= s)
            && query.until.as_deref().is_none_or(|u| stamp < u)
    };
    let mut trails: Vec<Trail> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for line in lines {
        if !in_range(&line) {
            continue;
        }
        if let Some(id) = queued_id(&line)
            && !open.contains_key(id)
            && matches(query, id, &line)
        {
            open.insert(id.to_string(), trails.len());
            trails.push(Trail {
                id: id.to_string(),
                lines: Vec::new(),
            });
        }
        // A step names the queue id as a word of its own (DSN lines name two).
        for word in line.split(|c: char| !c.is_ascii_hexdigit()) {
            if word.len() == 16
                && let Some(&at) = open.get(word)
            {
                trails[at].lines.push(line.clone());
                break;
            }
        }
    }
    let skip = trails.len().saturating_sub(limit);
    trails.drain(..skip);
    trails
}

/// The queue id of a `queued` line (`… INFO  queued 0123456789abcdef from=<…> …`).
fn queued_id(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "queued")?;
    words
        .next()
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn matches(query: &Query, id: &str, line: &str) -> bool {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let has = |want: &Option<String>, value: &str| {
        want.as_deref()
            .is_none_or(|w| value.to_ascii_lowercase().contains(&w.to_ascii_lowercase()))
    };
    query
        .id
        .as_deref()
        .is_none_or(|want| want.eq_ignore_ascii_case(id))
        && has(&query.message_id, field("msgid"))
        && has(&query.from, field("from"))
        && has(&query.to, field("to"))
        && has(&query.client, field("client"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-03T10:00:00.000Z INFO  queued 00000000000000aa from=<a@one.test> size=10 rcpts=1 client=mail.one.test[192.0.2.1] tls=TLSv1.3 to=<bob@example.com> msgid=<m1@one.test> auth=spf=pass,dkim=pass,dmarc=pass
2026-12-03T10:00:01.000Z INFO  queued 00000000000000bb from=<c@two.test> size=10 rcpts=2 client=x[198.51.100.7] tls=no to=<eve@example.com>,<bob@example.com> msgid=<m2@two.test> auth=-
2026-12-03T10:00:02.000Z INFO  next hop 10.0.0.5:25 for example.com: connection refused
2026-12-03T10:00:02.500Z INFO  00000000000000aa to=<bob@example.com> relay=10.0.0.5:25 tls=no reply=\"451 try later\"
2026-12-03T11:00:00.000Z INFO  00000000000000aa to=<bob@example.com> relay=10.0.0.5:25 tls=TLSv1.3 reply=\"250 ok\"
2026-12-03T11:00:01.000Z INFO  00000000000000bb bounce to <c@two.test> for <eve@example.com>: DSN queued as 00000000000000cc
";

    fn find(query: Query) -> Vec<Trail> {
        search(&query, LOG.lines().map(str::to_string), 10)
    }

    #[test]
    fn a_message_is_found_by_each_field_with_every_step() {
        let by_id = find(Query {
            id: Some("00000000000000AA".into()),
            ..Query::default()
        });
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id[0].lines.len(), 3, "{by_id:?}");
        assert!(by_id[0].lines[2].contains("250 ok"));
        let ids = |q: Query| find(q).into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(Query {
                message_id: Some("m2@two".into()),
                ..Query::default()
            }),
            ["00000000000000bb"]
        );
        assert_eq!(
            ids(Query {
                to: Some("bob@example.com".into()),
                ..Query::default()
            }),
            ["00000000000000aa", "00000000000000bb"]
        );
        assert_eq!(
            ids(Query {
                from: Some("@ONE.test".into()),
                ..Query::default()
            }),
            ["00000000000000aa"]
        );
        assert_eq!(
            ids(Query {
                client: Some("198.51.100.7".into()),
                ..Query::default()
            }),
            ["00000000000000bb"]
        );
        // The bounce line belongs to the bounced message's trail.
        let bounced = find(Query {
            id: Some("00000000000000bb".into()),
            ..Query::default()
        });
        assert!(bounced[0].lines[1].contains("DSN queued as 00000000000000cc"));
    }

    #[test]
    fn the_time_range_bounds_the_lines_searched() {
        let late = find(Query {
            since: Some("2026-12-03T11".into()),
            ..Query::default()
        });
        assert!(late.is_empty(), "queued before the range: {late:?}");
        let early = find(Query {
            id: Some("00000000000000aa".into()),
            until: Some("2026-12-03T11".into()),
            ..Query::default()
        });
        assert_eq!(early[0].lines.len(), 2);
        assert!(
            find(Query {
                to: Some("nobody@".into()),
                ..Query::default()
            })
            .is_empty()
        );
    }
}
