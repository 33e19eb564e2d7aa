//! ETRN (RFC 1985): an authorized client (its address in `flow.etrn_networks`) asks us to
//! deliver now what waits for a domain we serve — typically the primary, back up, pulling
//! the mail its secondary held. The flush is the same paced release an operator's
//! `edgemx queue flush --domain` starts.
//!
//! ETRN is advertised in EHLO only to authorized clients: others could not use it, and an
//! unadvertised verb does not invite probing. `ETRN #queue` names a queue, which we do not
//! have: refused with 459.

use super::session::{Flow, Session};
use crate::delivery::Target;
use crate::smtp::proto::Reply;

/// What ETRN named.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    /// `domain` or `@domain` (the domain and its subdomains).
    Domain { name: String, subdomains: bool },
    /// `#queue`.
    Queue(String),
}

impl Session {
    /// True when this client may use ETRN (and sees it in EHLO).
    pub fn etrn_allowed(&self) -> bool {
        let ip = self.peer.ip();
        self.ctx
            .config
            .flow
            .etrn_networks
            .iter()
            .any(|n| n.contains(ip))
    }

    pub async fn etrn(&mut self, arg: String) -> Flow {
        if !self.etrn_allowed() {
            log::info!("{}: ETRN {arg} refused: client not authorized", self.peer);
            return self.refuse(Reply::etrn_client_refused());
        }
        let node = match parse(&arg) {
            Some(node) => node,
            None => {
                return self.refuse(Reply::param_syntax(
                    "ETRN takes a domain, @domain or #queue",
                ));
            }
        };
        let (name, subdomains) = match node {
            Node::Queue(_) => {
                return self.answer(Reply::etrn_node_refused(&arg, "no named queues here"));
            }
            Node::Domain { name, subdomains } => (name, subdomains),
        };
        let config = &self.ctx.config;
        let served = config
            .domains
            .iter()
            .any(|d| d.name == name || subdomains && d.name.ends_with(&format!(".{name}")));
        if !served {
            return self.answer(Reply::etrn_node_refused(&arg, "not a domain served here"));
        }
        let deliveries = &self.ctx.deliveries;
        let target = Target::Domain { name, subdomains };
        match deliveries.flush(target).await {
            Ok(0) => self.answer(Reply::etrn_nothing(&arg)),
            Ok(n) => {
                log::info!("{}: ETRN {arg}: {n} messages released", self.peer);
                self.answer(Reply::etrn_started(&arg))
            }
            Err(e) => {
                log::warn!("{}: ETRN {arg}: {e}", self.peer);
                self.answer(Reply::etrn_unable(&arg))
            }
        }
    }
}

fn parse(arg: &str) -> Option<Node> {
    if let Some(queue) = arg.strip_prefix('#') {
        return (!queue.is_empty()).then(|| Node::Queue(queue.to_string()));
    }
    let (name, subdomains) = match arg.strip_prefix('@') {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    labels_ok.then_some(Node::Domain { name, subdomains })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_domains_subdomain_wildcards_or_queues() {
        let domain = |name: &str, subdomains| {
            Some(Node::Domain {
                name: name.into(),
                subdomains,
            })
        };
        assert_eq!(parse("Example.COM."), domain("example.com", false));
        assert_eq!(parse("@example.com"), domain("example.com", true));
        assert_eq!(parse("#outbound"), Some(Node::Queue("outbound".into())));
        for bad in [
            "",
            "@",
            "#",
            "exa mple.com",
            "a..b",
            "-a.b",
            "ex%ample.com",
            "[127.0.0.1]",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
