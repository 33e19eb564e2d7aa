//! Load client for `scripts/bench-auth` and `scripts/bench-scale` (issue 16 items 4 and 5).
//! Loopback only. The SMTP dialogue is `edgemx_tests::client::SmtpClient`'s.
//!
//! ```text
//! bench-load send ADDR SESSIONS MESSAGES FIRST SOURCE HELO FROM RCPT
//!     MESSAGES messages over SESSIONS connections opened at once and reused (PIPELINING:
//!     MAIL, RCPT and DATA in one write), each message with a unique X-Bench-Seq header
//!     counting from FIRST (checked by `bench-tls sink`). SOURCE is `size:BYTES` (a
//!     generated message of about BYTES) or a directory whose files are whole messages
//!     (e.g. pre-signed with DKIM): message number i sends file i mod count, byte for byte
//!     (bare LF becomes CRLF; X-Bench-Seq goes first, outside any signature), and "{n}"
//!     in FROM becomes that file's number (one sender domain per file). Every message's
//!     accept latency is timed: from the write of the final "." to its 250.
//! bench-load hold ADDR SESSIONS STATE BODY PID HELO FROM RCPT
//!     Memory per session: reads PID's VmRSS and Pss, opens SESSIONS connections that stay
//!     idle after EHLO (STATE idle) or that sent MAIL, RCPT, DATA and BODY bytes of a body
//!     and then stall (STATE data), waits until PID's memory settles, reads it again and
//!     closes them all.
//! ```
//!
//! Every command prints one JSON object.

use edgemx_tests::client::SmtpClient;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        match args.first().map(String::as_str) {
            Some("send") if args.len() == 9 => send(&args[1..]).await,
            Some("hold") if args.len() == 9 => hold(&args[1..]).await,
            _ => Err("usage: see the module documentation of tests/src/bin/bench-load.rs".into()),
        }
    });
    match result {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Message bodies on the wire (CRLF, dot-stuffed, without the final ".").
fn load_source(source: &str) -> Res<Vec<Vec<u8>>> {
    if let Some(bytes) = source.strip_prefix("size:") {
        let size: usize = bytes.parse()?;
        let head =
            b"From: <bench@client.bench.test>\r\nTo: <rcpt@example.com>\r\nSubject: bench\r\n\r\n";
        let line =
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\r\n";
        let mut m = head.to_vec();
        while m.len() + line.len() <= size.max(head.len() + line.len()) {
            m.extend_from_slice(line);
        }
        return Ok(vec![m]);
    }
    let mut paths: Vec<_> = std::fs::read_dir(source)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let raw = std::fs::read(&p)?;
        let mut wire = Vec::with_capacity(raw.len() + raw.len() / 32);
        let mut prev = 0u8;
        let mut line_start = true;
        for &b in &raw {
            if b == b'\n' && prev != b'\r' {
                wire.push(b'\r');
            }
            if line_start && b == b'.' {
                wire.push(b'.');
            }
            wire.push(b);
            line_start = b == b'\n';
            prev = b;
        }
        if !wire.ends_with(b"\r\n") {
            wire.extend_from_slice(b"\r\n");
        }
        out.push(wire);
    }
    if out.is_empty() {
        return Err(format!("no message files in {source}").into());
    }
    Ok(out)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    millis(sorted[((p / 100.0 * sorted.len() as f64) as usize).min(sorted.len() - 1)])
}

// --- send ---------------------------------------------------------------------------------

struct Dialogue {
    helo: String,
    from: String,
    rcpt: String,
}

async fn send(a: &[String]) -> Res<String> {
    let addr: SocketAddr = a[0].parse()?;
    let (sessions, messages, first): (u64, u64, u64) =
        (a[1].parse()?, a[2].parse()?, a[3].parse()?);
    let bodies = Arc::new(load_source(&a[4])?);
    let d = Arc::new(Dialogue {
        helo: a[5].clone(),
        from: a[6].clone(),
        rcpt: a[7].clone(),
    });
    let next = Arc::new(AtomicU64::new(first));
    let end = first + messages;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let (next, bodies, d) = (next.clone(), bodies.clone(), d.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let r = sender(addr, &d, &next, end, first, &bodies, &mut lat).await;
            (lat, r.err().map(|e| e.to_string()))
        }));
    }
    let mut lat = Vec::with_capacity(messages as usize);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                lat.extend(l);
                errors.extend(e);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let first_error = errors
        .first()
        .cloned()
        .unwrap_or_default()
        .replace('"', "'");
    Ok(format!(
        "{{\"accepted\":{},\"messages\":{messages},\"sessions\":{sessions},\"bytes\":{bytes},\"seconds\":{secs:.3},\"rate\":{:.1},\"mib_per_second\":{:.2},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"failed_sessions\":{},\"error\":\"{first_error}\"}}",
        lat.len(),
        lat.len() as f64 / secs,
        (lat.len() * bytes) as f64 / secs / 1_048_576.0,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 100.0),
        errors.len(),
    ))
}

async fn sender(
    addr: SocketAddr,
    d: &Dialogue,
    next: &AtomicU64,
    end: u64,
    first: u64,
    bodies: &[Vec<u8>],
    lat: &mut Vec<Duration>,
) -> Res<()> {
    let mut c = connect(addr).await?;
    if c.banner.code != 220 {
        return Err(format!("banner {:?}", c.banner).into());
    }
    c.send(format!("EHLO {}\r\n", d.helo).as_bytes()).await;
    expect(&mut c, 250, "EHLO").await?;
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= end {
            break;
        }
        let n = ((seq - first) % bodies.len() as u64) as usize;
        let from = d.from.replace("{n}", &n.to_string());
        let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{}>\r\nDATA\r\n", d.rcpt);
        c.send(envelope.as_bytes()).await;
        expect(&mut c, 250, "MAIL").await?;
        expect(&mut c, 250, "RCPT").await?;
        expect(&mut c, 354, "DATA").await?;
        let body = &bodies[n];
        c.send(format!("X-Bench-Seq: {seq}\r\n").as_bytes()).await;
        c.send(body).await;
        let t = Instant::now();
        c.send(b".\r\n").await;
        expect(&mut c, 250, "end of data").await?;
        lat.push(t.elapsed());
    }
    c.send(b"QUIT\r\n").await;
    let _ = c.try_reply().await;
    Ok(())
}

async fn connect(addr: SocketAddr) -> Res<SmtpClient> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(SmtpClient::connected(tcp).await?)
}

async fn expect(c: &mut SmtpClient, code: u16, what: &str) -> Res<()> {
    let r = c.try_reply().await?;
    if r.code != code {
        return Err(format!("{what}: {} {}", r.code, r.text).into());
    }
    Ok(())
}

// --- hold ---------------------------------------------------------------------------------

/// (VmRSS, Pss) of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let field = |path: String, name: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    (
        field(format!("/proc/{pid}/status"), "VmRSS:"),
        field(format!("/proc/{pid}/smaps_rollup"), "Pss:"),
    )
}

/// Waits until `pid`'s RSS has not moved by more than 64 KiB for half a second (10 s at most).
async fn settled(pid: u32) -> (u64, u64) {
    let mut last = memory(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = memory(pid);
        if now.0.abs_diff(last.0) <= 64 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

async fn hold(a: &[String]) -> Res<String> {
    let addr: SocketAddr = a[0].parse()?;
    let sessions: usize = a[1].parse()?;
    let data = match a[2].as_str() {
        "idle" => false,
        "data" => true,
        other => return Err(format!("STATE: idle or data, not {other}").into()),
    };
    let body_bytes: usize = a[3].parse()?;
    let pid: u32 = a[4].parse()?;
    let d = Arc::new(Dialogue {
        helo: a[5].clone(),
        from: a[6].clone(),
        rcpt: a[7].clone(),
    });
    let before = settled(pid).await;
    let body = {
        let mut m = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: held\r\n\r\n",
            d.from, d.rcpt
        )
        .into_bytes();
        while m.len() < body_bytes {
            m.extend_from_slice(
                b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
            );
        }
        m.truncate(body_bytes.max(1));
        Arc::new(m)
    };
    // Open them in waves of 100 so that the listen backlog never overflows.
    let mut held = Vec::with_capacity(sessions);
    let mut failed = Vec::new();
    for wave in (0..sessions).collect::<Vec<_>>().chunks(100) {
        let mut tasks = Vec::new();
        for _ in wave {
            let (d, body) = (d.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = connect(addr).await?;
                c.send(format!("EHLO {}\r\n", d.helo).as_bytes()).await;
                expect(&mut c, 250, "EHLO").await?;
                if data {
                    c.send(
                        format!("MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n", d.from, d.rcpt)
                            .as_bytes(),
                    )
                    .await;
                    expect(&mut c, 250, "MAIL").await?;
                    expect(&mut c, 250, "RCPT").await?;
                    expect(&mut c, 354, "DATA").await?;
                    c.send(&body).await;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(c)
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => held.push(c),
                Ok(Err(e)) => failed.push(e.to_string()),
                Err(e) => failed.push(e.to_string()),
            }
        }
    }
    let after = settled(pid).await;
    let open = held.len();
    drop(held);
    let per = |i: fn(&(u64, u64)) -> u64| {
        if open == 0 {
            0.0
        } else {
            (i(&after) as f64 - i(&before) as f64) * 1024.0 / open as f64
        }
    };
    let first_error = failed
        .first()
        .cloned()
        .unwrap_or_default()
        .replace('"', "'");
    Ok(format!(
        "{{\"open\":{open},\"failed\":{},\"state\":\"{}\",\"body_bytes\":{body_bytes},\"rss_before_kib\":{},\"rss_after_kib\":{},\"pss_before_kib\":{},\"pss_after_kib\":{},\"rss_bytes_per_session\":{:.0},\"pss_bytes_per_session\":{:.0},\"error\":\"{first_error}\"}}",
        failed.len(),
        a[2],
        before.0,
        after.0,
        before.1,
        after.1,
        per(|m| m.0),
        per(|m| m.1),
    ))
}
