use super::*;

fn original(sender: &str) -> Envelope {
    Envelope {
        id: crate::envelope::QueueId(0x2A),
        client: "mail.example.org [192.0.2.1]".into(),
        attempts: 3,
        ..Envelope::new(sender, Vec::new(), 1_700_000_000)
    }
}

fn rcpt(address: &str, status: RcptStatus) -> Recipient {
    Recipient {
        status,
        ..Recipient::pending(address)
    }
}

const BODY: &[u8] =
    b"From: a@example.org\r\nTo: x@example.com\r\nSubject: hi\r\n\r\nsecret body\r\n";

/// The boundary from the top-level Content-Type, and the parts between its delimiters.
fn parts(message: &str) -> (String, Vec<String>) {
    let (head, body) = message
        .split_once("\r\n\r\n")
        .expect("header/body separator");
    let unfolded = head.replace("\r\n\t", " ");
    let ctype = unfolded
        .lines()
        .find(|l| l.starts_with("Content-Type: multipart/report;"))
        .expect("multipart/report content type");
    assert!(ctype.contains("report-type=delivery-status"), "{ctype}");
    let boundary = ctype
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .expect("boundary parameter")
        .to_string();
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(body.ends_with(&close), "closing delimiter at the end");
    let inner = &body[..body.len() - close.len()];
    let delimiter = format!("--{boundary}\r\n");
    let mut pieces = inner.split(delimiter.as_str());
    let preamble = pieces.next().unwrap_or_default();
    assert!(!preamble.contains(&boundary));
    (boundary, pieces.map(str::to_string).collect())
}

#[test]
fn bounce_is_a_multipart_report_with_three_parts() {
    let failed = rcpt(
        "x@example.com",
        RcptStatus::Failed {
            reply: remote_reply("mx.example.com", "550 5.1.1 no such user"),
            at: 1_700_000_100,
        },
    );
    let (envelope, body) = bounce(
        "mx1.example.net",
        &original("a@example.org"),
        BODY,
        &[&failed],
        1_700_000_200,
    )
    .expect("a DSN");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    assert!(body.is_ascii(), "7-bit");
    assert!(
        !text.replace("\r\n", "").contains('\n') && !text.replace("\r\n", "").contains('\r'),
        "CRLF only"
    );
    assert!(text.lines().all(|l| l.len() <= 998));
    for header in [
        "Date: Tue, 14 Nov 2023 22:16:40 +0000\r\n",
        "From: Mail Delivery System <MAILER-DAEMON@mx1.example.net>\r\n",
        "To: <a@example.org>\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "MIME-Version: 1.0\r\n",
    ] {
        assert!(text.contains(header), "missing {header:?}");
    }
    assert!(text.contains("@mx1.example.net>\r\n") && text.contains("Message-ID: <"));

    let (_, parts) = parts(&text);
    assert_eq!(parts.len(), 3, "{parts:#?}");
    assert!(parts[0].contains("Content-Type: text/plain; charset=us-ascii\r\n"));
    assert!(parts[0].contains("<x@example.com>: host mx.example.com said: 550 5.1.1 no such user"));
    let status = &parts[1];
    assert!(status.starts_with(
        "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    for field in [
        "Reporting-MTA: dns; mx1.example.net\r\n",
        "Received-From-MTA: dns; mail.example.org\r\n",
        "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
        "\r\n\r\nFinal-Recipient: rfc822; x@example.com\r\n",
        "Action: failed\r\n",
        "Status: 5.1.1\r\n",
        "Remote-MTA: dns; mx.example.com\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n",
    ] {
        assert!(status.contains(field), "missing {field:?} in {status}");
    }
    assert!(parts[2].starts_with("Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: a@example.org\r\n"));
    assert!(parts[2].contains("Subject: hi\r\n"));
    assert!(
        !text.contains("secret body"),
        "only the headers are returned"
    );

    assert_eq!(envelope.sender, "", "DSNs come from the null sender");
    assert_eq!(envelope.recipients.len(), 1);
    assert_eq!(envelope.recipients[0].address, "a@example.org");
    assert_eq!(envelope.recipients[0].domain, "example.org");
    assert_eq!(envelope.size, body.len() as u64);
    assert!(!envelope.smtputf8 && !envelope.eight_bit);
}

#[test]
fn null_sender_gets_no_dsn() {
    let failed = rcpt(
        "x@example.com",
        RcptStatus::Failed {
            reply: "550 no".into(),
            at: 1,
        },
    );
    assert!(bounce("mx1.example.net", &original(""), BODY, &[&failed], 2).is_none());
    assert!(bounce("mx1.example.net", &original("a@example.org"), BODY, &[], 2).is_none());
}

#[test]
fn expired_recipients_report_4_4_7_and_last_reply() {
    let deferred = rcpt(
        "y@example.com",
        RcptStatus::Deferred {
            reply: "451 try later".into(),
            at: 5,
        },
    );
    let pending = rcpt("z@example.com", RcptStatus::Pending);
    let (_, body) = bounce(
        "h",
        &original("a@example.org"),
        BODY,
        &[&deferred, &pending],
        9,
    )
    .expect("a DSN");
    let text = String::from_utf8(body).expect("utf-8");
    assert_eq!(text.matches("Status: 4.4.7\r\n").count(), 2, "{text}");
    assert!(text.contains("Diagnostic-Code: smtp; 451 try later\r\n"));
    assert!(text.contains("<z@example.com>: delivery time expired\r\n"));
}

#[test]
fn status_falls_back_to_the_basic_code_class() {
    let failed = RcptStatus::Failed {
        reply: "554 no thanks".into(),
        at: 1,
    };
    assert_eq!(status_code(&failed, Action::Failed), "5.0.0");
    let odd = RcptStatus::Failed {
        reply: "connection refused".into(),
        at: 1,
    };
    assert_eq!(status_code(&odd, Action::Failed), "5.0.0");
    let multi = RcptStatus::Failed {
        reply: "550-5.7.1 policy".into(),
        at: 1,
    };
    assert_eq!(status_code(&multi, Action::Failed), "5.7.1");
    let later = RcptStatus::Deferred {
        reply: "421 4.7.0 busy".into(),
        at: 1,
    };
    assert_eq!(status_code(&later, Action::Delayed { until: 9 }), "4.7.0");
}

#[test]
fn delay_notice_says_delayed_and_until_when() {
    let deferred = rcpt(
        "y@example.com",
        RcptStatus::Deferred {
            reply: "451 later".into(),
            at: 5,
        },
    );
    let (_, body) = report(
        "h",
        &original("a@example.org"),
        BODY,
        &[&deferred],
        Action::Delayed { until: 86_400 },
        9,
    )
    .expect("a DSN");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains("Action: delayed\r\nStatus: 4.0.0\r\n"),
        "{text}"
    );
    assert!(text.contains("Will-Retry-Until: Fri, 02 Jan 1970 00:00:00 +0000\r\n"));
    assert!(text.contains("Subject: Delayed Mail"));
}

#[test]
fn utf8_addresses_are_encoded_and_flag_smtputf8() {
    let failed = rcpt(
        "jos\u{e9}@exampl\u{e9}.com",
        RcptStatus::Failed {
            reply: "550 5.1.1 no".into(),
            at: 1,
        },
    );
    let (envelope, body) =
        bounce("h", &original("b\u{fc}ro@example.org"), BODY, &[&failed], 2).expect("a DSN");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains("Final-Recipient: utf-8; jos\\x{E9}@exampl\\x{E9}.com\r\n"),
        "{text}"
    );
    assert!(text.contains("To: <b\u{fc}ro@example.org>\r\n"));
    assert!(envelope.smtputf8);
}

#[test]
fn eight_bit_headers_are_declared_and_bare_line_ends_become_crlf() {
    let failed = rcpt(
        "x@example.com",
        RcptStatus::Failed {
            reply: "550 no".into(),
            at: 1,
        },
    );
    let body = b"Subject: caf\xc3\xa9\nX-Bare: a\rb\r\n\r\nbody";
    let (envelope, dsn) =
        bounce("h", &original("a@example.org"), body, &[&failed], 2).expect("a DSN");
    assert!(envelope.eight_bit);
    let text = String::from_utf8(dsn).expect("utf-8");
    assert!(
        text.contains(
            "Content-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\u{e9}\r\nX-Bare: a\r\nb\r\n"
        ),
        "{text}"
    );
}

#[test]
fn diagnostic_text_is_one_clean_line() {
    assert_eq!(
        clean("550-first\r\n550 second\u{e9}"),
        "550-first  550 second?"
    );
    assert_eq!(clean(&"x".repeat(5_000)).len(), MAX_DIAGNOSTIC);
}

#[test]
fn notify_chooses_who_is_reported_and_ret_full_returns_the_message() {
    use crate::smtp::proto::dsn::{Notify, Orcpt, Ret};
    let failed = RcptStatus::Failed {
        reply: "550 5.1.1 gone".into(),
        at: 1,
    };
    let mut never = rcpt("never@example.com", failed.clone());
    never.notify = Some(Notify::default());
    let mut asked = rcpt("asked@example.com", failed);
    asked.notify = Some(Notify {
        failure: true,
        ..Notify::default()
    });
    asked.orcpt = Some(Orcpt {
        kind: "rfc822".into(),
        address: "Asked+1@example.com".into(),
    });
    let mut env = original("a@example.org");
    assert!(
        bounce("h", &env, BODY, &[&never], 9).is_none(),
        "NOTIFY=NEVER"
    );
    env.ret = Some(Ret::Full);
    env.envid = Some("QQ 1".into());
    let (_, body) = bounce("h", &env, BODY, &[&never, &asked], 9).expect("a DSN");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(!text.contains("never@example.com"), "{text}");
    assert!(text.contains("Original-Envelope-Id: QQ+201\r\n"), "{text}");
    assert!(
        text.contains("Original-Recipient: rfc822;Asked+1@example.com\r\nFinal-Recipient: rfc822; asked@example.com\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: message/rfc822\r\n\r\nFrom: a@example.org"),
        "{text}"
    );
    assert!(text.contains("secret body"), "RET=FULL: {text}");
    let delayed = report("h", &env, BODY, &[&asked], Action::Delayed { until: 99 }, 9);
    assert!(delayed.is_none(), "NOTIFY=FAILURE asks for no delay notice");
    let relayed = report("h", &env, BODY, &[&asked], Action::Relayed, 9);
    assert!(relayed.is_none(), "nor for a success notice");
}

#[test]
fn ret_hdrs_and_the_default_return_headers_only() {
    let failed = rcpt(
        "x@example.com",
        RcptStatus::Failed {
            reply: "550 5.1.1 gone".into(),
            at: 1,
        },
    );
    let mut env = original("a@example.org");
    for ret in [None, Some(crate::smtp::proto::dsn::Ret::Hdrs)] {
        env.ret = ret;
        let (_, body) = bounce("h", &env, BODY, &[&failed], 9).expect("a DSN");
        let text = String::from_utf8(body).expect("utf-8");
        assert!(text.contains("text/rfc822-headers"), "{text}");
        assert!(!text.contains("secret body"), "{text}");
    }
}

#[test]
fn an_unreadable_original_is_named_in_the_text_and_not_attached() {
    let failed = rcpt(
        "x@example.com",
        RcptStatus::Failed {
            reply: "550 5.1.1 no such user".into(),
            at: 1_700_000_100,
        },
    );
    let why = "message 000000000000002A: stored body is corrupt: CRC-32 mismatch";
    let (envelope, body) = bounce(
        "mx1.example.net",
        &original("a@example.org"),
        Original::Unreadable(why),
        &[&failed],
        1_700_000_200,
    )
    .expect("the sender still hears of the failure");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let (_, parts) = parts(&text);
    assert_eq!(
        parts.len(),
        2,
        "notification and status, no original: {text}"
    );
    assert!(
        parts[0].contains(&format!("could not be read from the queue ({why})")),
        "{}",
        parts[0]
    );
    assert!(parts[1].contains("Content-Type: message/delivery-status"));
    assert!(parts[1].contains("Final-Recipient: rfc822; x@example.com"));
    assert!(!text.contains("rfc822-headers") && !text.contains("secret body"));
    assert_eq!(envelope.size, body.len() as u64);
    assert_eq!(envelope.recipients[0].address, "a@example.org");
}
