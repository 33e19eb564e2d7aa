//! The named replies. Codes follow RFC 5321 §4.2; enhanced codes follow RFC 3463 and the IANA
//! registry (5.6.7 from RFC 6531). Handlers call these instead of spelling codes.

use super::reply::Reply;

impl Reply {
    // Positive.

    /// `220 host ESMTP` (no enhanced status: RFC 2034 exempts the greeting).
    pub fn greeting(host: &str) -> Reply {
        Reply::plain(220, vec![format!("{host} ESMTP")])
    }

    /// `250-host` then one keyword per line (no enhanced status: RFC 2034 exempts EHLO).
    pub fn ehlo(host: &str, keywords: &[&str]) -> Reply {
        let mut lines = vec![host.to_string()];
        lines.extend(keywords.iter().map(|k| k.to_string()));
        Reply::plain(250, lines)
    }

    pub fn helo(host: &str) -> Reply {
        Reply::plain(250, vec![host.to_string()])
    }

    pub fn ok() -> Reply {
        Reply::new(250, (2, 0, 0), "OK")
    }

    pub fn sender_ok() -> Reply {
        Reply::new(250, (2, 1, 0), "Sender OK")
    }

    pub fn recipient_ok() -> Reply {
        Reply::new(250, (2, 1, 5), "Recipient OK")
    }

    /// After DATA (no enhanced status: 3xx has no enhanced class).
    pub fn start_data() -> Reply {
        Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()])
    }

    pub fn queued(id: &str) -> Reply {
        Reply::new(250, (2, 0, 0), format!("OK queued as {id}"))
    }

    pub fn closing() -> Reply {
        Reply::new(221, (2, 0, 0), "Bye")
    }

    pub fn help() -> Reply {
        Reply::new(214, (2, 0, 0), "See RFC 5321")
    }

    /// VRFY is answered without disclosing anything (RFC 5321 §3.5.3).
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            (2, 5, 0),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    pub fn auth_ok() -> Reply {
        Reply::new(235, (2, 7, 0), "Authentication successful")
    }

    /// An AUTH challenge: base64 text, no enhanced status (RFC 4954 §4).
    pub fn auth_challenge(base64: &str) -> Reply {
        Reply::plain(334, vec![base64.to_string()])
    }

    pub fn tls_ready() -> Reply {
        Reply::new(220, (2, 0, 0), "Ready to start TLS")
    }

    // Protocol errors.

    pub fn bad_sequence() -> Reply {
        Reply::new(503, (5, 5, 1), "Bad sequence of commands")
    }

    pub fn command_unrecognized() -> Reply {
        Reply::new(500, (5, 5, 1), "Command unrecognized")
    }

    pub fn syntax_error(detail: &str) -> Reply {
        Reply::new(500, (5, 5, 2), format!("Syntax error: {detail}"))
    }

    /// Bad bytes in a command argument (control characters, invalid UTF-8).
    pub fn command_syntax(detail: &str) -> Reply {
        Reply::new(501, (5, 5, 2), format!("Syntax error: {detail}"))
    }

    pub fn param_syntax(detail: &str) -> Reply {
        Reply::new(501, (5, 5, 4), format!("Invalid arguments: {detail}"))
    }

    pub fn not_implemented() -> Reply {
        Reply::new(502, (5, 5, 1), "Command not implemented")
    }

    pub fn param_unsupported(detail: &str) -> Reply {
        Reply::new(555, (5, 5, 4), format!("Parameter not supported: {detail}"))
    }

    pub fn line_too_long() -> Reply {
        Reply::new(500, (5, 5, 2), "Line too long")
    }

    pub fn sender_syntax(detail: &str) -> Reply {
        Reply::new(
            501,
            (5, 1, 7),
            format!("Bad sender address syntax: {detail}"),
        )
    }

    pub fn recipient_syntax(detail: &str) -> Reply {
        Reply::new(
            501,
            (5, 1, 3),
            format!("Bad recipient address syntax: {detail}"),
        )
    }

    /// RFC 6531 §3.7.4.1: non-ASCII address without SMTPUTF8.
    pub fn non_ascii_address() -> Reply {
        Reply::new(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8")
    }

    /// A BDAT chunk that is not the last was stored (RFC 3030 §2).
    pub fn chunk_received(size: u64) -> Reply {
        Reply::new(250, (2, 0, 0), format!("{size} octets received"))
    }

    pub fn too_many_commands() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many commands, closing connection")
    }

    /// RFC 5321 §4.5.3.1.10 lets a server limit transactions per session; 452 asks the
    /// client to continue in a new session.
    pub fn too_many_messages() -> Reply {
        Reply::new(
            452,
            (4, 5, 3),
            "Too many messages in this session, reconnect",
        )
    }

    pub fn too_many_errors() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many errors, closing connection")
    }

    pub fn timeout() -> Reply {
        Reply::new(421, (4, 4, 2), "Timeout, closing connection")
    }

    // Policy.

    pub fn relay_denied() -> Reply {
        Reply::new(550, (5, 7, 1), "Relay access denied")
    }

    /// End of data: the From: domain's DMARC policy is `reject` and the message failed it.
    pub fn dmarc_reject(domain: &str) -> Reply {
        Reply::new(
            550,
            (5, 7, 1),
            format!("Message rejected: DMARC policy of {domain} says reject"),
        )
    }

    /// End of data: the content scanner (rspamd) refused the message; `text` is its SMTP
    /// message, with control characters dropped.
    pub fn content_rejected(text: &str) -> Reply {
        Reply::new(554, (5, 7, 1), printable(text))
    }

    /// End of data: the content scanner asked for a later try (soft reject, greylist).
    pub fn content_deferred(text: &str) -> Reply {
        Reply::new(451, (4, 7, 1), printable(text))
    }

    /// End of data: clamd found `signature`.
    pub fn virus_found(signature: &str) -> Reply {
        Reply::new(
            554,
            (5, 7, 1),
            format!("Message rejected: virus found: {}", printable(signature)),
        )
    }

    /// End of data: a scanner was down, slow or garbled and `scan.on_error = "tempfail"`.
    pub fn scan_failed() -> Reply {
        Reply::new(
            451,
            (4, 7, 1),
            "Content scan temporarily unavailable, try again later",
        )
    }

    /// End of data: a DNS error left the DMARC verdict open (`auth.dns_errors = "defer"`).
    pub fn auth_temporary_failure() -> Reply {
        Reply::new(
            451,
            (4, 7, 0),
            "Temporary DNS failure checking sender authentication, try again later",
        )
    }

    pub fn unknown_recipient() -> Reply {
        Reply::new(550, (5, 1, 1), "Recipient unknown")
    }

    /// The recipient's backend could not be asked whether it exists (callout failed).
    pub fn recipient_unverifiable() -> Reply {
        Reply::new(
            451,
            (4, 4, 3),
            "Cannot verify recipient now, try again later",
        )
    }

    pub fn too_many_recipients() -> Reply {
        Reply::new(452, (4, 5, 3), "Too many recipients")
    }

    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, (5, 5, 1), "No valid recipients")
    }

    pub fn must_issue_starttls_first() -> Reply {
        Reply::new(530, (5, 7, 0), "Must issue a STARTTLS command first")
    }

    /// RFC 4954 §6: AUTH before TLS (we offer no mechanism that is safe in clear text).
    pub fn encryption_required() -> Reply {
        Reply::new(
            538,
            (5, 7, 11),
            "Encryption required for requested authentication mechanism",
        )
    }

    /// RFC 4954 §6: a submission listener takes no mail without a relay grant.
    pub fn auth_required() -> Reply {
        Reply::new(530, (5, 7, 0), "Authentication required")
    }

    pub fn auth_failed() -> Reply {
        Reply::new(535, (5, 7, 8), "Authentication credentials invalid")
    }

    pub fn auth_mechanism_unknown() -> Reply {
        Reply::new(504, (5, 5, 4), "Unrecognized authentication type")
    }

    pub fn auth_cancelled() -> Reply {
        Reply::new(501, (5, 0, 0), "Authentication cancelled")
    }

    pub fn auth_malformed() -> Reply {
        Reply::new(501, (5, 5, 2), "Cannot decode authentication response")
    }

    pub fn auth_unavailable() -> Reply {
        Reply::new(454, (4, 7, 0), "Temporary authentication failure")
    }

    pub fn tls_not_available() -> Reply {
        Reply::new(454, (4, 7, 0), "TLS not available")
    }

    pub fn too_many_connections() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many connections, try again later")
    }

    // Message content.

    pub fn message_too_big() -> Reply {
        Reply::new(552, (5, 3, 4), "Message size exceeds limit")
    }

    /// Bare CR or LF in message data. 554 ("transaction failed", RFC 5321 §4.2.3) with 5.6.0
    /// ("other media error", RFC 3463): the content breaks the CRLF line structure. No
    /// registered enhanced code is more specific.
    /// A line longer than RFC 5322 §2.1.1 allows, with `limits.long_lines = "reject"`.
    pub fn line_too_long_in_data() -> Reply {
        Reply::new(
            554,
            (5, 6, 0),
            "Message has a line longer than 998 octets (RFC 5322 2.1.1)",
        )
    }

    pub fn bare_line_ending() -> Reply {
        Reply::new(554, (5, 6, 0), "Bare CR or LF in message data not allowed")
    }

    /// NUL in message data (RFC 5322 §2.3 forbids it; it is a smuggling vector downstream).
    pub fn nul_in_data() -> Reply {
        Reply::new(554, (5, 6, 0), "NUL character in message data not allowed")
    }

    // Local conditions.

    pub fn storage_full() -> Reply {
        Reply::new(452, (4, 3, 1), "Insufficient system storage")
    }

    pub fn local_error() -> Reply {
        Reply::new(451, (4, 3, 0), "Local error in processing")
    }

    pub fn shutting_down() -> Reply {
        Reply::new(421, (4, 3, 2), "Service shutting down, closing connection")
    }

    /// More `Received` headers than `flow.max_hops`: a mail loop (RFC 5321 §6.3).
    pub fn too_many_hops(hops: usize) -> Reply {
        Reply::new(
            554,
            (5, 4, 6),
            format!("Too many hops ({hops} Received headers): mail loop"),
        )
    }

    // ETRN (RFC 1985).

    pub fn etrn_started(node: &str) -> Reply {
        Reply::new(
            250,
            (2, 0, 0),
            format!("OK, queuing for node {node} started"),
        )
    }

    pub fn etrn_nothing(node: &str) -> Reply {
        Reply::new(
            251,
            (2, 0, 0),
            format!("OK, no messages waiting for node {node}"),
        )
    }

    pub fn etrn_unable(node: &str) -> Reply {
        Reply::new(
            458,
            (4, 3, 0),
            format!("Unable to queue messages for node {node}"),
        )
    }

    pub fn etrn_node_refused(node: &str, why: &str) -> Reply {
        Reply::new(459, (4, 7, 1), format!("Node {node} not allowed: {why}"))
    }

    pub fn etrn_client_refused() -> Reply {
        Reply::new(554, (5, 7, 1), "ETRN not permitted from your address")
    }
}

/// A scanner's text as one reply line: control characters dropped, at most 200 characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_ehlo_have_no_enhanced_status() {
        let mut out = Vec::new();
        Reply::greeting("mx.example").write_to(&mut out);
        Reply::ehlo("mx.example", &["PIPELINING", "8BITMIME"]).write_to(&mut out);
        Reply::start_data().write_to(&mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(
            text,
            "220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n\
             354 End data with <CR><LF>.<CR><LF>\r\n"
        );
    }

    #[test]
    fn queued_echoes_the_id_safely() {
        assert_eq!(
            Reply::queued("AB12").to_string(),
            "250 2.0.0 OK queued as AB12"
        );
        assert_eq!(
            Reply::queued("a\r\nb").lines,
            vec!["OK queued as a??b".to_string()]
        );
    }

    #[test]
    fn codes_match_their_class() {
        for r in [
            Reply::storage_full(),
            Reply::shutting_down(),
            Reply::timeout(),
        ] {
            assert!(r.is_transient() && r.status.0 == 4, "{r}");
        }
        for r in [
            Reply::relay_denied(),
            Reply::message_too_big(),
            Reply::bare_line_ending(),
        ] {
            assert!(r.is_permanent() && r.status.0 == 5, "{r}");
        }
    }
}
