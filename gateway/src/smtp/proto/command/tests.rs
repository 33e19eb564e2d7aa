use super::*;
use crate::smtp::proto::address::Mailbox;
use crate::smtp::proto::domain::Domain;
use crate::smtp::proto::params::Body;

fn parse(line: &str) -> Result<Command, CommandError> {
    parse_command(line.as_bytes())
}

/// The reply a line gets, as "code x.y.z".
fn code(line: &[u8]) -> String {
    match parse_command(line) {
        Ok(c) => format!("ok {c:?}"),
        Err(e) => {
            let r = e.reply();
            format!("{} {}", r.code, r.status)
        }
    }
}

fn mailbox(local: &str, domain: &str) -> Mailbox {
    Mailbox {
        local: local.into(),
        domain: Domain::Name(domain.into()),
        quoted_local: false,
    }
}

#[test]
fn verbs_are_case_insensitive() {
    assert_eq!(
        parse("ehlo Client.Example"),
        Ok(Command::Ehlo("Client.Example".into()))
    );
    assert_eq!(parse("HeLo x"), Ok(Command::Helo("x".into())));
    assert_eq!(parse("data"), Ok(Command::Data));
    assert_eq!(parse("Rset"), Ok(Command::Rset));
    assert_eq!(parse("QUIT"), Ok(Command::Quit));
    assert_eq!(parse("starttls"), Ok(Command::StartTls));
    assert_eq!(parse("NOOP anything"), Ok(Command::Noop));
    assert_eq!(parse("HELP"), Ok(Command::Help(None)));
    assert_eq!(parse("help mail"), Ok(Command::Help(Some("mail".into()))));
    assert_eq!(
        parse("VRFY John Smith"),
        Ok(Command::Vrfy("John Smith".into()))
    );
    assert_eq!(parse("EXPN staff"), Ok(Command::Expn("staff".into())));
    assert_eq!(
        parse("ETRN @example.com"),
        Ok(Command::Etrn("@example.com".into()))
    );
}

#[test]
fn mail_with_params() {
    let cmd = parse("MAIL FROM:<a@b.example> SIZE=1024 BODY=8BITMIME");
    let params = MailParams {
        size: Some(1024),
        body: Body::EightBitMime,
        ..MailParams::default()
    };
    assert_eq!(
        cmd,
        Ok(Command::Mail {
            from: ReversePath::Mailbox(mailbox("a", "b.example")),
            params
        })
    );
    let null = parse("mail from:<>");
    assert_eq!(
        null,
        Ok(Command::Mail {
            from: ReversePath::Null,
            params: MailParams::default()
        })
    );
}

#[test]
fn spaces_tolerated_after_the_colon_and_at_the_end_only() {
    assert!(parse("MAIL FROM: <a@b.example>").is_ok());
    assert!(parse("MAIL FROM:   <a@b.example>  ").is_ok());
    assert!(parse("RCPT TO: <a@b.example>").is_ok());
    assert!(parse("DATA ").is_ok());
    assert_eq!(code(b"MAIL  FROM:<a@b.example>"), "501 5.5.4");
    assert_eq!(code(b"MAIL FROM :<a@b.example>"), "501 5.5.4");
    assert_eq!(code(b"EHLO  x"), "501 5.5.4");
    assert_eq!(code(b" QUIT"), "500 5.5.1");
}

#[test]
fn rcpt() {
    let cmd = parse("RCPT TO:<Postmaster>");
    assert_eq!(
        cmd,
        Ok(Command::Rcpt {
            to: ForwardPath::Postmaster,
            params: RcptParams::default()
        })
    );
    assert_eq!(code(b"RCPT TO:<a@b.example> XNOTIFY=NEVER"), "555 5.5.4");
    assert_eq!(code(b"RCPT TO:<>"), "501 5.1.3");
    assert_eq!(code(b"RCPT TO:a@b.example"), "501 5.1.3");
    assert_eq!(code(b"RCPT FROM:<a@b.example>"), "501 5.5.4");
    assert_eq!(code(b"RCPT"), "501 5.5.4");
}

#[test]
fn smtputf8_addresses() {
    assert_eq!(code("MAIL FROM:<jö@b.example>".as_bytes()), "553 5.6.7");
    assert!(parse("MAIL FROM:<jö@b.example> SMTPUTF8").is_ok());
    assert_eq!(code("RCPT TO:<jö@b.example>".as_bytes()), "553 5.6.7");
    assert!(parse_command_with("RCPT TO:<jö@bü.example>".as_bytes(), true).is_ok());
    assert_eq!(code("EHLO bü.example".as_bytes()), "501 5.5.2");
    assert_eq!(
        code("MAIL FROM:<a@b.example> SIZE=\u{e9}".as_bytes()),
        "501 5.5.4"
    );
    assert_eq!(code(b"MAIL FROM:<\xff@b.example> SMTPUTF8"), "501 5.5.2");
}

#[test]
fn bdat() {
    assert_eq!(
        parse("BDAT 1000"),
        Ok(Command::Bdat {
            size: 1000,
            last: false
        })
    );
    assert_eq!(
        parse("bdat 0 last"),
        Ok(Command::Bdat {
            size: 0,
            last: true
        })
    );
    for bad in [
        "BDAT",
        "BDAT x",
        "BDAT -1",
        "BDAT 1 MORE",
        "BDAT 1 LAST x",
        "BDAT 99999999999999999999999",
    ] {
        assert_eq!(code(bad.as_bytes()), "501 5.5.4", "{bad}");
    }
}

#[test]
fn auth_is_parsed_not_judged() {
    let plain = parse("AUTH plain AGFsaWNlAHNlY3JldA==");
    let expected = Command::Auth {
        mechanism: "PLAIN".into(),
        initial: Some("AGFsaWNlAHNlY3JldA==".into()),
    };
    assert_eq!(plain, Ok(expected));
    assert_eq!(
        parse("AUTH LOGIN"),
        Ok(Command::Auth {
            mechanism: "LOGIN".into(),
            initial: None
        })
    );
    assert!(parse("AUTH PLAIN =").is_ok());
    for bad in [
        "AUTH",
        "AUTH PL@IN",
        "AUTH PLAIN a b",
        "AUTH PLAIN ab===",
        "AUTH PLAIN ==",
        "AUTH X a=b",
    ] {
        assert_eq!(code(bad.as_bytes()), "501 5.5.4", "{bad}");
    }
}

#[test]
fn argument_count() {
    for (line, reply) in [
        ("EHLO", "501 5.5.4"),
        ("EHLO a b", "501 5.5.4"),
        ("DATA x", "501 5.5.4"),
        ("QUIT now", "501 5.5.4"),
        ("STARTTLS x", "501 5.5.4"),
        ("RSET x", "501 5.5.4"),
        ("VRFY", "501 5.5.4"),
        ("MAIL", "501 5.5.4"),
        ("MAIL FROM:<a@b.example>SIZE=1", "501 5.5.4"),
    ] {
        assert_eq!(code(line.as_bytes()), reply, "{line}");
    }
}

#[test]
fn unknown_and_empty() {
    assert_eq!(code(b"XYZZY"), "500 5.5.1");
    assert_eq!(code(b"MAILFROM:<a@b>"), "500 5.5.1");
    assert_eq!(code(b"GET / HTTP/1.1"), "500 5.5.1");
    assert_eq!(code(b""), "500 5.5.2");
    assert_eq!(code(b"   "), "500 5.5.2");
}

#[test]
fn hostile_bytes_in_commands() {
    assert_eq!(code(b"MAIL FROM:<a@b.example>\rRCPT TO:<c@d>"), "500 5.5.2");
    assert_eq!(code(b"RCPT TO:<a@b.example>\n"), "500 5.5.2");
    assert_eq!(code(b"\rQUIT"), "500 5.5.2");
    assert_eq!(code(b"EHLO a\x00b"), "501 5.5.2");
    assert_eq!(code(b"EHLO a\tb"), "501 5.5.2");
    assert_eq!(code(b"RCPT TO:<a\x7f@b.example>"), "501 5.5.2");
    assert_eq!(code(b"EHLO \xc3\x28"), "501 5.5.2");
}

#[test]
fn address_errors_name_the_role() {
    assert_eq!(code(b"MAIL FROM:<a@@b>"), "501 5.1.7");
    assert_eq!(code(b"RCPT TO:<a@@b>"), "501 5.1.3");
    let long = format!("RCPT TO:<{}@b.example>", "x".repeat(65));
    assert_eq!(code(long.as_bytes()), "501 5.1.3");
    assert_eq!(
        code(b"MAIL FROM:<a@b.example> BODY=BINARYMIME"),
        "555 5.5.4"
    );
    assert_eq!(code(b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2"), "501 5.5.4");
}

#[test]
fn error_replies_do_not_echo_raw_input() {
    let e = parse("MAIL FROM:<a@b.example> X-\u{1b}=1");
    let reply = e.map(|_| Reply::ok()).unwrap_or_else(|e| e.reply());
    let mut wire = Vec::new();
    reply.write_to(&mut wire);
    assert!(
        wire.iter()
            .all(|&b| b == b'\r' || b == b'\n' || (0x20..0x7f).contains(&b))
    );
}

#[test]
fn dsn_parameters_are_accepted_and_malformed_ones_get_501() {
    assert!(parse("MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159").is_ok());
    assert!(parse("RCPT TO:<a@b.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b.example").is_ok());
    assert_eq!(code(b"MAIL FROM:<a@b.example> RET=BODY"), "501 5.5.4");
    assert_eq!(code(b"MAIL FROM:<a@b.example> ENVID=a+ZZ"), "501 5.5.4");
    assert_eq!(
        code(b"RCPT TO:<a@b.example> NOTIFY=NEVER,FAILURE"),
        "501 5.5.4"
    );
    assert_eq!(code(b"RCPT TO:<a@b.example> NOTIFY=SOMETIMES"), "501 5.5.4");
    assert_eq!(
        code(b"RCPT TO:<a@b.example> ORCPT=a@b.example"),
        "501 5.5.4"
    );
}
