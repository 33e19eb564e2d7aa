//! Operational answers from the gateway as text for the terminal.

use serde_json::Value;
use std::fmt::Write;

pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// `2026-11-26 09:30:00` (UTC).
fn date(secs: u64) -> String {
    let (y, m, d) = crate::time::civil(secs / 86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs % 86_400 / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub fn status(v: &Value) -> String {
    let mut out = String::new();
    let q = &v["queue"];
    let _ = writeln!(
        out,
        "edgemx {}  {}",
        v["version"].as_str().unwrap_or("?"),
        v["hostname"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "uptime        {}", age(n(&v["uptime"])));
    let _ = writeln!(
        out,
        "revision      {}",
        v["revision"].as_u64().map_or("-".into(), |r| r.to_string())
    );
    if let Some(p) = v["pending_confirm"].as_object() {
        let _ = writeln!(
            out,
            "pending       revision {} rolls back in {} unless `confirm`",
            n(&p["revision"]),
            age(n(&p["in"]))
        );
    }
    let _ = writeln!(out, "connections   {} open", n(&v["connections"]));
    let oldest = q["oldest_age"].as_u64().map_or("-".into(), age);
    let _ = writeln!(
        out,
        "queue         {} messages, {} bytes, {} recipients deferred, oldest {oldest}",
        n(&q["messages"]),
        n(&q["bytes"]),
        n(&q["deferred_recipients"])
    );
    let _ = writeln!(
        out,
        "commits       {} durable queue commits since start",
        n(&q["commits"])
    );
    if let Some(why) = q["failing"].as_str() {
        let _ = writeln!(
            out,
            "STORAGE       cannot commit, refusing mail (452): {why}"
        );
    }
    for d in q["domains"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<30} {:>6} pending {:>6} deferred",
            d["domain"].as_str().unwrap_or("?"),
            n(&d["pending"]),
            n(&d["deferred"])
        );
    }
    out
}

pub fn tls(v: &Value) -> String {
    let mut out = String::new();
    let generated = if v["generated"].as_bool() == Some(true) {
        " (self-signed, generated)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "certificate   {}{generated}",
        v["certificate"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "SHA-256       {}", v["sha256"].as_str().unwrap_or("?"));
    let _ = writeln!(
        out,
        "expires       {}",
        v["not_after"].as_str().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "chain         {} certificate(s)",
        n(&v["chain_length"])
    );
    let list = |key: &str| -> String {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "versions      {}", list("versions"));
    let _ = writeln!(out, "ciphers       {}", list("cipher_suites"));
    let cpu: Vec<String> = v["cpu"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f.get(0)?.as_str()?;
            Some(format!(
                "{name} {}",
                if f.get(1)?.as_bool()? { "yes" } else { "no" }
            ))
        })
        .collect();
    let _ = writeln!(out, "CPU crypto    {}", cpu.join(", "));
    out
}

pub fn history(v: &Value) -> String {
    let mut out = String::from("  #  revision  committed             comment\n");
    for (i, r) in v.as_array().into_iter().flatten().enumerate() {
        let _ = writeln!(
            out,
            "{i:>3}  {:>8}  {}  {}",
            n(&r["number"]),
            date(n(&r["time"])),
            r["comment"].as_str().unwrap_or("")
        );
    }
    out.push_str("(`rollback #` loads a revision into the candidate)\n");
    out
}

pub fn route(v: &Value) -> String {
    let hops: Vec<&str> = v["next_hops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "domain      {}\naccepted    {}\nnext hops   {}\nTLS         {}\nrewriting   {}\n",
        v["domain"].as_str().unwrap_or("?"),
        if v["accepted"].as_bool() == Some(true) {
            "yes (a domain we serve)"
        } else {
            "no (relay denied: not a domain we serve)"
        },
        hops.join(", "),
        v["tls"].as_str().unwrap_or("?"),
        v["rewriting"].as_str().unwrap_or("none"),
    )
}
