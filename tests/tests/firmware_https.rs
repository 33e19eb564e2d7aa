//! `request firmware install https://…` fetches the bundle over TLS, trusting the configured
//! CA bundle (issue 13), here from a real HTTPS server: lighttpd (Debian packages
//! `lighttpd` and `lighttpd-mod-openssl`, installed by scripts/setup) on loopback.

use edgemx::fetch::{self, FetchError, Url};
use edgemx_tests::gateway::free_port;
use edgemx_tests::pki::Ca;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// lighttpd serving `dir/www` over HTTPS on 127.0.0.1 with the given certificate and key.
struct Lighttpd {
    child: Child,
    port: u16,
}

impl Lighttpd {
    fn start(dir: &Path, cert_pem: &str, key_pem: &str) -> Lighttpd {
        let pem = dir.join("server.pem");
        std::fs::write(&pem, format!("{cert_pem}{key_pem}")).unwrap();
        let port = free_port().port();
        let conf = dir.join("lighttpd.conf");
        std::fs::write(
            &conf,
            format!(
                "server.document-root = \"{www}\"\nserver.bind = \"127.0.0.1\"\n\
                 server.port = {port}\nserver.modules += (\"mod_openssl\")\n\
                 ssl.engine = \"enable\"\nssl.pemfile = \"{pem}\"\n\
                 server.errorlog = \"{log}\"\n",
                www = dir.join("www").display(),
                pem = pem.display(),
                log = dir.join("error.log").display(),
            ),
        )
        .unwrap();
        let child = Command::new("lighttpd")
            .arg("-D")
            .arg("-f")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("lighttpd runs (scripts/setup installs lighttpd and lighttpd-mod-openssl)");
        let server = Lighttpd { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "lighttpd did not listen: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("https://localhost:{}{path}", self.port)).unwrap()
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_ca(dir: &Path, name: &str, ca: &Ca) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

#[tokio::test]
async fn a_bundle_is_fetched_over_https_with_the_configured_ca_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    let bundle: Vec<u8> = (0..3_000_000u32).map(|n| (n * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("www/edgemx.bundle"), &bundle).unwrap();
    let ca = Ca::new("Update Server CA");
    let server_id = ca.issue("localhost", &["localhost"]);
    let server = Lighttpd::start(dir.path(), &server_id.cert_pem, &server_id.key_pem);
    let trusted = write_ca(dir.path(), "trusted.pem", &ca);

    // Streamed, exactly the file, the length from Content-Length.
    let (mut body, size) = fetch::get(&server.url("/edgemx.bundle"), 64 << 20, None, &trusted)
        .await
        .expect("fetched over https");
    assert_eq!(size, bundle.len() as u64);
    let mut got = Vec::new();
    body.read_to_end(&mut got).await.unwrap();
    assert!(got == bundle, "the body differs from the served file");

    // A bundle larger than the slot is refused from its Content-Length, before the body.
    let too_big = fetch::get(&server.url("/edgemx.bundle"), 1 << 20, None, &trusted).await;
    assert!(
        matches!(
            too_big,
            Err(FetchError::TooBig {
                size: 3_000_000,
                limit: 1_048_576
            })
        ),
        "{:?}",
        too_big.err()
    );

    // A missing file names the server's answer.
    let missing = fetch::get(&server.url("/nothing.bundle"), 64 << 20, None, &trusted).await;
    match missing {
        Err(FetchError::Status(line)) => assert!(line.contains("404"), "{line}"),
        other => panic!("expected a 404, got {:?}", other.err()),
    }

    // A server the configured CAs do not vouch for is refused in the handshake.
    let other = write_ca(dir.path(), "other.pem", &Ca::new("Somebody Else"));
    match fetch::get(&server.url("/edgemx.bundle"), 64 << 20, None, &other).await {
        Err(FetchError::Tls(why)) => assert!(why.contains("UnknownIssuer"), "{why}"),
        other => panic!("expected a TLS refusal, got {:?}", other.err()),
    }
}
