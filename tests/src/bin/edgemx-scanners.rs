//! The tests' scanner daemons for `scripts/bench`: Debian's rspamd and clamd on loopback
//! with the test rules and signature (nothing downloaded). Prints one line,
//! `rspamd=http://127.0.0.1:P clamd=127.0.0.1:Q`, then runs them until SIGTERM, SIGINT or
//! the end of standard input, and stops them.

use std::io::Write;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rspamd = edgemx_tests::scanners::Daemon::rspamd();
    let clamd = edgemx_tests::scanners::Daemon::clamd("100M");
    println!("rspamd=http://{} clamd={}", rspamd.addr, clamd.addr);
    let _ = std::io::stdout().flush();
    let (mut term, mut int) = (
        signal(SignalKind::terminate()).expect("SIGTERM handler"),
        signal(SignalKind::interrupt()).expect("SIGINT handler"),
    );
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = stdin_closed => {}
    }
    // Dropping them stops both daemons (their own process groups).
    drop((rspamd, clamd));
}
