//! Load client and TLS sink for `scripts/bench-tls` (issue 16 item 2). Loopback only.
//!
//! ```text
//! bench-tls handshakes ADDR SIG RESUME CLIENTS SECONDS PID
//!     SIG ecdsa|rsa (the signature schemes offered), RESUME full|resumed; CLIENTS loops of
//!     connect, EHLO, STARTTLS, handshake, EHLO, QUIT for SECONDS; PID is the server's root
//!     process, whose CPU time (with its descendants') is measured over the same window.
//! bench-tls send ADDR TLS SUITE FIRST MESSAGES SIZE CLIENTS RCPT PID
//!     TLS plain|starttls, SUITE aes|chacha|any; MESSAGES of SIZE bytes over CLIENTS
//!     connections (reused), each with a unique X-Bench-Seq header counting from FIRST;
//!     PID as above.
//! bench-tls sink PORT TLS EXPECT TIMEOUT PROGRESS
//!     an SMTP sink (STARTTLS offered when TLS = starttls, rustls, any certificate) that
//!     exits once EXPECT distinct messages arrived or after TIMEOUT seconds, reporting
//!     duplicates and how many TLS sessions were resumed. After every message it replaces
//!     the file PROGRESS with "DISTINCT DUPLICATES TLS_SESSIONS RESUMED", so that one sink
//!     can serve several measured phases (an MTA marks a next hop that went away as down
//!     and paces its return, which a sink per phase would measure instead of TLS).
//! bench-tls cpu PID
//!     CPU seconds used so far by PID and its descendants (see `handshakes`).
//! bench-tls cipher MIB
//!     rustls bulk encryption+decryption in memory, per AEAD suite, MiB/s on one core.
//! ```
//!
//! Every command prints one JSON object. The load client checks no server signature (it
//! accepts any certificate and handshake signature) so that its own CPU goes to the load,
//! not to verification; the server's work is the same either way.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        match args.first().map(String::as_str) {
            Some("handshakes") if args.len() == 7 => handshakes(&args[1..]).await,
            Some("send") if args.len() == 10 => send(&args[1..]).await,
            Some("sink") if args.len() == 6 => sink(&args[1..]).await,
            Some("cipher") if args.len() == 2 => cipher(&args[1]),
            Some("cpu") if args.len() == 2 => Ok(format!("{:.3}", cpu_seconds(args[1].parse()?))),
            _ => Err("usage: see the module documentation of tests/src/bin/bench-tls.rs".into()),
        }
    });
    match result {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-tls: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// --- handshakes ---------------------------------------------------------------------------

async fn handshakes(a: &[String]) -> Res<String> {
    let addr: SocketAddr = a[0].parse()?;
    let rsa = match a[1].as_str() {
        "ecdsa" => false,
        "rsa" => true,
        other => return Err(format!("SIG: ecdsa or rsa, not {other}").into()),
    };
    let resume = a[2] == "resumed";
    let (clients, seconds, pid): (usize, u64, u32) = (a[3].parse()?, a[4].parse()?, a[5].parse()?);
    let config = client_config(rsa, resume, None);
    // Warm-up: one handshake so that resumed runs start with a ticket.
    starttls_once(addr, config.clone()).await?;
    let done = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (config, done, resumed, failed) = (
            config.clone(),
            done.clone(),
            resumed.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match starttls_once(addr, config.clone()).await {
                    Ok(kind) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        if kind == rustls::HandshakeKind::Resumed {
                            resumed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let n = done.load(Ordering::Relaxed);
    Ok(format!(
        "{{\"handshakes\":{n},\"resumed\":{},\"failed\":{},\"seconds\":{secs:.3},\"rate\":{:.1},\"server_cpu_seconds\":{cpu:.3},\"per_cpu_second\":{:.1}}}",
        resumed.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        n as f64 / secs,
        if cpu > 0.0 { n as f64 / cpu } else { 0.0 },
    ))
}

/// connect, EHLO, STARTTLS, handshake, EHLO, QUIT.
async fn starttls_once(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Res<rustls::HandshakeKind> {
    let mut io = BufReader::new(TcpStream::connect(addr).await?);
    expect(&mut io, "220").await?;
    io.get_mut().write_all(b"EHLO bench.test\r\n").await?;
    expect(&mut io, "250").await?;
    io.get_mut().write_all(b"STARTTLS\r\n").await?;
    expect(&mut io, "220").await?;
    let name = rustls::pki_types::ServerName::try_from("bench.test")?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, io.into_inner())
        .await?;
    let kind = tls.get_ref().1.handshake_kind().ok_or("no handshake")?;
    let mut io = BufReader::new(tls);
    io.get_mut().write_all(b"EHLO bench.test\r\n").await?;
    expect(&mut io, "250").await?;
    io.get_mut().write_all(b"QUIT\r\n").await?;
    expect(&mut io, "221").await?;
    Ok(kind)
}

/// Reads one (multi-line) reply and checks its code.
async fn expect<S: AsyncRead + Unpin>(io: &mut BufReader<S>, code: &str) -> Res<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Err(format!("connection closed, wanted {code}").into());
        }
        if !line.starts_with(code) {
            return Err(format!("wanted {code}, got {}", line.trim_end()).into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

fn client_config(rsa: bool, resume: bool, suite: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    match suite {
        Some("aes") => provider.cipher_suites.retain(|s| {
            matches!(
                s.suite(),
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                    | rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
            )
        }),
        Some("chacha") => provider
            .cipher_suites
            .retain(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
        _ => {}
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unchecked { rsa }))
        .with_no_client_auth();
    config.resumption = if resume {
        rustls::client::Resumption::in_memory_sessions(4096)
    } else {
        rustls::client::Resumption::disabled()
    };
    Arc::new(config)
}

/// Accepts every certificate and signature; offers RSA or ECDSA schemes only, which is
/// what makes a server with both certificates present one or the other.
#[derive(Debug)]
struct Unchecked {
    rsa: bool,
}

impl rustls::client::danger::ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        use rustls::SignatureScheme as S;
        if self.rsa {
            vec![S::RSA_PSS_SHA256, S::RSA_PSS_SHA384, S::RSA_PKCS1_SHA256]
        } else {
            vec![S::ECDSA_NISTP256_SHA256]
        }
    }
}

/// User and system CPU seconds of `pid` and its live descendants, plus what its reaped
/// children used (Postfix's smtpd processes come and go under master).
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux.
    let mut parents = std::collections::HashMap::new();
    let mut own = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in dir.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command name, which may hold spaces: state is field 3.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        parents.insert(p, num(4) as u32);
        let reaped = if p == pid { num(16) + num(17) } else { 0.0 };
        own.insert(p, num(14) + num(15) + reaped);
    }
    let under = |mut p: u32| {
        while p > 1 {
            if p == pid {
                return true;
            }
            p = parents.get(&p).copied().unwrap_or(0);
        }
        false
    };
    own.iter()
        .filter(|(p, _)| under(**p))
        .map(|(_, t)| t)
        .sum::<f64>()
        / ticks
}

// --- send ---------------------------------------------------------------------------------

async fn send(a: &[String]) -> Res<String> {
    let addr: SocketAddr = a[0].parse()?;
    let tls = a[1] == "starttls";
    let suite = a[2].clone();
    let first: u64 = a[3].parse()?;
    let (messages, size, clients): (u64, usize, u64) =
        (a[4].parse()?, a[5].parse()?, a[6].parse()?);
    let rcpt = a[7].clone();
    let pid: u32 = a[8].parse()?;
    let config = client_config(false, true, Some(suite.as_str()));
    let next = Arc::new(AtomicU64::new(first));
    let end = first + messages;
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (config, next, rcpt) = (config.clone(), next.clone(), rcpt.clone());
        tasks.push(tokio::spawn(async move {
            sender(addr, tls, config, next, end, size, &rcpt).await
        }));
    }
    let mut suites = HashSet::new();
    for t in tasks {
        suites.insert(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let suites: Vec<String> = suites.into_iter().map(|s| format!("\"{s}\"")).collect();
    Ok(format!(
        "{{\"messages\":{messages},\"bytes\":{},\"seconds\":{secs:.3},\"server_cpu_seconds\":{cpu:.3},\"rate\":{:.1},\"mib_per_second\":{:.2},\"suites\":[{}]}}",
        messages * size as u64,
        messages as f64 / secs,
        (messages * size as u64) as f64 / secs / 1_048_576.0,
        suites.join(",")
    ))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn sender(
    addr: SocketAddr,
    tls: bool,
    config: Arc<rustls::ClientConfig>,
    next: Arc<AtomicU64>,
    end: u64,
    size: usize,
    rcpt: &str,
) -> Res<String> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut io = BufReader::new(tcp);
    expect(&mut io, "220").await?;
    io.get_mut().write_all(b"EHLO bench.test\r\n").await?;
    expect(&mut io, "250").await?;
    let mut suite = "plain".to_string();
    let mut io: BufReader<Box<dyn Io>> = if tls {
        io.get_mut().write_all(b"STARTTLS\r\n").await?;
        expect(&mut io, "220").await?;
        let name = rustls::pki_types::ServerName::try_from("bench.test")?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, io.into_inner())
            .await?;
        if let Some(s) = tls.get_ref().1.negotiated_cipher_suite() {
            suite = format!("{:?}", s.suite());
        }
        let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(tls));
        io.get_mut().write_all(b"EHLO bench.test\r\n").await?;
        expect(&mut io, "250").await?;
        io
    } else {
        BufReader::new(Box::new(io.into_inner()))
    };
    let line = "x".repeat(76) + "\r\n";
    let body: String = line.repeat(size / line.len() + 1)[..size / line.len() * line.len()].into();
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= end {
            break;
        }
        let msg = format!("MAIL FROM:<bench@client.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n",);
        io.get_mut().write_all(msg.as_bytes()).await?;
        expect(&mut io, "250").await?;
        expect(&mut io, "250").await?;
        expect(&mut io, "354").await?;
        let data = format!(
            "From: bench@client.test\r\nTo: {rcpt}\r\nSubject: bench {seq}\r\nX-Bench-Seq: {seq}\r\n\r\n{body}.\r\n"
        );
        io.get_mut().write_all(data.as_bytes()).await?;
        expect(&mut io, "250").await?;
    }
    io.get_mut().write_all(b"QUIT\r\n").await?;
    let _ = expect(&mut io, "221").await;
    Ok(suite)
}

// --- sink ---------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    seen: HashSet<u64>,
    duplicates: u64,
    messages: u64,
    sessions: u64,
    tls_sessions: u64,
    resumed: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Counts changed since the progress file was last written.
    dirty: bool,
}

impl Tally {
    /// Replaces the progress file (`distinct duplicates tls_sessions resumed`).
    fn write_progress(&mut self, progress: &std::path::Path) -> std::io::Result<()> {
        let line = format!(
            "{} {} {} {}\n",
            self.seen.len(),
            self.duplicates,
            self.tls_sessions,
            self.resumed
        );
        let tmp = progress.with_extension("tmp");
        std::fs::write(&tmp, line)?;
        std::fs::rename(&tmp, progress)?;
        self.dirty = false;
        Ok(())
    }
}

/// How often the progress file follows the counts. Written per message (a file created
/// and renamed under the tally's lock), it capped the sink near 4,300 msg/s while edgemx
/// delivered to it, and `scripts/bench-scale` read that as edgemx's delivery rate.
const PROGRESS_EVERY: Duration = Duration::from_millis(5);

async fn sink(a: &[String]) -> Res<String> {
    let port: u16 = a[0].parse()?;
    let tls = a[1] == "starttls";
    let (expect_n, timeout): (u64, u64) = (a[2].parse()?, a[3].parse()?);
    let progress = Arc::new(std::path::PathBuf::from(&a[4]));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let server = Arc::new(sink_tls()?);
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let done = Arc::new(tokio::sync::Notify::new());
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    tokio::pin!(deadline);
    let writer = {
        let (tally, progress) = (tally.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                if t.dirty {
                    let _ = t.write_progress(&progress);
                }
            }
        })
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                // Replies are small writes: without this, Nagle and the peer's delayed ACK
                // hold each one up to 40 ms and the sink, not the MTA, sets the pace.
                stream.set_nodelay(true)?;
                let (server, tally, done) = (server.clone(), tally.clone(), done.clone());
                let progress = progress.clone();
                tokio::spawn(async move {
                    let tls = tls.then_some(server);
                    let _ = sink_session(stream, tls, &tally, expect_n, &done, &progress).await;
                });
            }
            _ = done.notified() => break,
            _ = &mut deadline => break,
        }
    }
    writer.abort();
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    if t.dirty {
        t.write_progress(&progress)?;
    }
    let span = match (t.first, t.last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    Ok(format!(
        "{{\"distinct\":{},\"messages\":{},\"duplicates\":{},\"expected\":{expect_n},\"sessions\":{},\"tls_sessions\":{},\"resumed\":{},\"first_to_last_seconds\":{span:.3}}}",
        t.seen.len(),
        t.messages,
        t.duplicates,
        t.sessions,
        t.tls_sessions,
        t.resumed
    ))
}

fn sink_tls() -> Res<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = rcgen::CertificateParams::new(vec!["sink.bench.test".into()])?.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)?;
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(config)
}

async fn sink_session(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    tally: &std::sync::Mutex<Tally>,
    expect_n: u64,
    done: &tokio::sync::Notify,
    progress: &std::path::Path,
) -> Res<()> {
    tally.lock().unwrap_or_else(|e| e.into_inner()).sessions += 1;
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    io.get_mut()
        .write_all(b"220 sink.bench.test ESMTP\r\n")
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let ext = if tls.is_some() {
                    "250-STARTTLS\r\n"
                } else {
                    ""
                };
                let reply =
                    format!("250-sink.bench.test\r\n{ext}250-PIPELINING\r\n250 8BITMIME\r\n");
                io.get_mut().write_all(reply.as_bytes()).await?;
            }
            "STAR" if tls.is_some() => {
                io.get_mut().write_all(b"220 go ahead\r\n").await?;
                let plain = io.into_inner();
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone().ok_or("no TLS")?);
                let s = acceptor.accept(plain).await?;
                {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    let resumed =
                        s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    t.tls_sessions += 1;
                    t.resumed += u64::from(resumed);
                }
                io = BufReader::new(Box::new(s));
            }
            "MAIL" | "RCPT" | "RSET" | "NOOP" => io.get_mut().write_all(b"250 ok\r\n").await?,
            "DATA" => {
                io.get_mut().write_all(b"354 go\r\n").await?;
                let mut seq = None;
                loop {
                    line.clear();
                    if io.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if seq.is_none()
                        && let Some(v) = line.strip_prefix("X-Bench-Seq: ")
                    {
                        seq = v.trim().parse::<u64>().ok();
                    }
                }
                let finished = {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    let now = Instant::now();
                    t.first.get_or_insert(now);
                    t.last = Some(now);
                    t.messages += 1;
                    if let Some(seq) = seq
                        && !t.seen.insert(seq)
                    {
                        t.duplicates += 1;
                    }
                    t.dirty = true;
                    let finished = t.seen.len() as u64 >= expect_n;
                    if finished {
                        t.write_progress(progress)?;
                    }
                    finished
                };
                io.get_mut().write_all(b"250 ok\r\n").await?;
                if finished {
                    done.notify_one();
                }
            }
            "QUIT" => {
                io.get_mut().write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => io.get_mut().write_all(b"502 no\r\n").await?,
        }
    }
}

// --- cipher -------------------------------------------------------------------------------

/// Bulk AEAD cost as rustls pays it: records of 16 KiB sealed by one in-memory connection
/// and opened by the other.
fn cipher(mib: &str) -> Res<String> {
    let mib: usize = mib.parse()?;
    let mut out = Vec::new();
    for name in [
        "TLS13_AES_128_GCM_SHA256",
        "TLS13_AES_256_GCM_SHA384",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ] {
        let rate = one_cipher(name, mib)?;
        out.push(format!("\"{name}\":{rate:.0}"));
    }
    Ok(format!("{{\"mib_per_second\":{{{}}}}}", out.join(",")))
}

fn one_cipher(suite: &str, mib: usize) -> Res<f64> {
    use std::io::{Read, Write};
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()) == suite);
    let provider = Arc::new(provider);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = rcgen::CertificateParams::new(vec!["bench.test".into()])?.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unchecked { rsa: false }))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("bench.test")?;
    let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
    let mut s = rustls::ServerConnection::new(Arc::new(server))?;
    let mut wire = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        wire.clear();
        c.write_tls(&mut wire)?;
        s.read_tls(&mut wire.as_slice())?;
        s.process_new_packets()?;
        wire.clear();
        s.write_tls(&mut wire)?;
        c.read_tls(&mut wire.as_slice())?;
        c.process_new_packets()?;
    }
    let chunk = vec![0x5au8; 16 * 1024];
    let mut plain = vec![0u8; 16 * 1024];
    let rounds = mib * 64;
    let start = Instant::now();
    for _ in 0..rounds {
        c.writer().write_all(&chunk)?;
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire)?;
        }
        let mut rd = wire.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd)?;
            s.process_new_packets()?;
            while let Ok(n) = s.reader().read(&mut plain) {
                if n == 0 {
                    break;
                }
            }
        }
    }
    Ok(mib as f64 / start.elapsed().as_secs_f64())
}
