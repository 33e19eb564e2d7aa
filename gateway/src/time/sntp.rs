//! An SNTP client (RFC 4330, the client mode of RFC 5905): one request, one validated
//! reply, the clock's offset and the round-trip delay. It asks and measures only; setting
//! the clock is init's (`init::clock`), so this is tested against a real server without
//! touching the host's clock.
//!
//! Also the small status file init writes after each attempt and the console's
//! `show status` reads ([`Status`], [`STATUS_PATH`]).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The NTP port.
pub const PORT: u16 = 123;
/// Where init records the clock's state for `show status`.
pub const STATUS_PATH: &str = "/run/edgemx/clock";

/// Seconds from 1900-01-01 (the NTP era 0 origin) to the Unix epoch.
const UNIX_OFFSET: u64 = 2_208_988_800;
const LEN: usize = 48;
/// LI 0 (no warning), version 4, mode 3 (client).
const REQUEST_HEAD: u8 = (4 << 3) | 3;
const MODE_SERVER: u8 = 4;
const LEAP_UNSYNCHRONISED: u8 = 3;

/// What one exchange measured: the server's clock minus ours, and the round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub server: SocketAddr,
    /// Add this to the local clock to get the server's time.
    pub offset: Offset,
    pub delay: Duration,
    pub stratum: u8,
}

/// A signed clock offset in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub i64);

impl Offset {
    pub fn abs(self) -> Duration {
        Duration::from_nanos(self.0.unsigned_abs())
    }

    /// `+3.214 ms`, `-1.500 s`.
    pub fn describe(self) -> String {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let abs = self.0.unsigned_abs();
        if abs >= 1_000_000_000 {
            format!("{sign}{:.3} s", abs as f64 / 1e9)
        } else {
            format!("{sign}{:.3} ms", abs as f64 / 1e6)
        }
    }
}

/// Why a reply was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the reply is {0} bytes, shorter than an NTP header")]
    Short(usize),
    #[error("the reply is in mode {0}, not 4 (server)")]
    Mode(u8),
    #[error("the server has stratum {0} (unsynchronised or a kiss-o'-death)")]
    Stratum(u8),
    #[error("the server says its clock is unsynchronised (leap indicator 3)")]
    Unsynchronised,
    #[error("the reply does not echo our request's transmit time")]
    Origin,
    #[error("the reply has no transmit time")]
    NoTransmit,
}

#[derive(Debug, thiserror::Error)]
pub enum SntpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Refused(Refusal),
}

/// Asks `server` once, waiting up to `timeout`. A reply that does not echo the request
/// (late, or forged by someone who did not see it) is ignored and the wait goes on; one
/// that does but fails validation is the answer. When only mismatched replies came, the
/// error says so rather than "no reply".
pub fn query(server: SocketAddr, timeout: Duration) -> Result<Sample, SntpError> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    // The low bits of the fraction are below the clock's precision: random, they make the
    // origin echo hard to guess for an off-path forger (RFC 5905 §9.1).
    let sent = Timestamp::now().0 ^ u64::from(fastrand::u16(..));
    socket.send(&request(Timestamp(sent)))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    let mut mismatched = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(if mismatched {
                SntpError::Refused(Refusal::Origin)
            } else {
                SntpError::Timeout(timeout)
            });
        }
        socket.set_read_timeout(Some(left))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let received = Timestamp::now();
        match check(&buf[..n], Timestamp(sent)) {
            Ok(reply) => return Ok(reply.sample(server, Timestamp(sent), received)),
            Err(Refusal::Origin) => mismatched = true,
            Err(refusal) => return Err(SntpError::Refused(refusal)),
        }
    }
}

/// A 64-bit NTP timestamp: seconds since 1900 (modulo 2^32) and a binary fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Timestamp {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs().wrapping_add(UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
        Timestamp((secs << 32) | frac)
    }

    /// `self - earlier` in nanoseconds. Wrapping arithmetic keeps this right across the
    /// 2036 era change as long as the two are within 68 years (RFC 4330 §3).
    fn minus(self, earlier: Timestamp) -> i128 {
        let units = i128::from(self.0.wrapping_sub(earlier.0) as i64);
        units * 1_000_000_000 / (1i128 << 32)
    }
}

/// A client request carrying `transmit` as its transmit timestamp.
pub fn request(transmit: Timestamp) -> [u8; LEN] {
    let mut p = [0u8; LEN];
    p[0] = REQUEST_HEAD;
    p[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    p
}

/// The parts of a valid server reply the offset is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub stratum: u8,
    pub receive: Timestamp,
    pub transmit: Timestamp,
}

impl Reply {
    /// Offset and delay by RFC 4330 §5: t1 sent, t2 received by the server, t3 sent by
    /// it, t4 received here.
    pub fn sample(&self, server: SocketAddr, t1: Timestamp, t4: Timestamp) -> Sample {
        let (t2, t3) = (self.receive, self.transmit);
        let offset = (t2.minus(t1) + t3.minus(t4)) / 2;
        let delay = (t4.minus(t1) - t3.minus(t2)).max(0);
        Sample {
            server,
            offset: Offset(offset.clamp(i64::MIN.into(), i64::MAX.into()) as i64),
            delay: Duration::from_nanos(u64::try_from(delay).unwrap_or(u64::MAX)),
            stratum: self.stratum,
        }
    }
}

/// Validates a reply to the request sent with transmit time `sent` (RFC 4330 §5).
pub fn check(p: &[u8], sent: Timestamp) -> Result<Reply, Refusal> {
    if p.len() < LEN {
        return Err(Refusal::Short(p.len()));
    }
    let leap = p[0] >> 6;
    let mode = p[0] & 7;
    let stamp = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[at..at + 8]);
        Timestamp(u64::from_be_bytes(b))
    };
    if mode != MODE_SERVER {
        return Err(Refusal::Mode(mode));
    }
    if stamp(24) != sent {
        return Err(Refusal::Origin);
    }
    if leap == LEAP_UNSYNCHRONISED {
        return Err(Refusal::Unsynchronised);
    }
    if !(1..=15).contains(&p[1]) {
        return Err(Refusal::Stratum(p[1]));
    }
    if stamp(40).0 == 0 {
        return Err(Refusal::NoTransmit);
    }
    Ok(Reply {
        stratum: p[1],
        receive: stamp(32),
        transmit: stamp(40),
    })
}

/// The clock's state as init last saw it: written to [`STATUS_PATH`] as `key=value`
/// lines, read by `show status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The last successful exchange: server, offset applied, Unix time, and how
    /// (`stepped` or `slewed`).
    pub server: Option<String>,
    pub offset: Option<String>,
    pub at: Option<u64>,
    pub how: Option<String>,
    /// Why the latest attempt failed, when it did.
    pub failure: Option<String>,
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("{k}={}\n", v.replace('\n', " ")));
            }
        };
        put("server", self.server.clone());
        put("offset", self.offset.clone());
        put("at", self.at.map(|t| t.to_string()));
        put("how", self.how.clone());
        put("failure", self.failure.clone());
        out
    }

    pub fn parse(text: &str) -> Status {
        let mut s = Status::default();
        for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
            let v = Some(v.to_string());
            match k {
                "server" => s.server = v,
                "offset" => s.offset = v,
                "at" => s.at = v.and_then(|v| v.parse().ok()),
                "how" => s.how = v,
                "failure" => s.failure = v,
                _ => {}
            }
        }
        s
    }

    /// One line for `show status`: `last sync 2026-12-03T19:00:00 UTC from 192.0.2.123
    /// (slewed +3.214 ms)`, and the latest failure if any.
    pub fn describe(&self) -> String {
        let mut out = match (&self.server, self.at) {
            (Some(server), Some(at)) => format!(
                "last sync {} UTC from {server} ({} {})",
                super::iso8601(at),
                self.how.as_deref().unwrap_or("offset"),
                self.offset.as_deref().unwrap_or("?")
            ),
            _ => "never synchronised".to_string(),
        };
        if let Some(failure) = &self.failure {
            out.push_str(&format!("; last attempt failed: {failure}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Timestamp = Timestamp(0xEB00_0000_0000_0000);

    fn reply(head: u8, stratum: u8, origin: Timestamp) -> [u8; LEN] {
        let mut p = [0u8; LEN];
        p[0] = head;
        p[1] = stratum;
        p[24..32].copy_from_slice(&origin.0.to_be_bytes());
        // Received 1.5 s after t1 by the server's clock, sent 1 ms later.
        let t2 = T1.0 + (3u64 << 31);
        let t3 = t2 + (1u64 << 32) / 1000;
        p[32..40].copy_from_slice(&t2.to_be_bytes());
        p[40..48].copy_from_slice(&t3.to_be_bytes());
        p
    }

    #[test]
    fn a_request_is_version_4_client_mode_with_the_transmit_time() {
        let p = request(T1);
        assert_eq!(p[0], 0x23);
        assert_eq!(&p[40..48], &T1.0.to_be_bytes());
        assert!(p[1..40].iter().all(|b| *b == 0));
    }

    #[test]
    fn offset_and_delay_follow_rfc_4330() {
        let server: SocketAddr = "192.0.2.123:123".parse().unwrap();
        let r = check(&reply(0x24, 2, T1), T1).expect("valid");
        assert_eq!(r.stratum, 2);
        // Our t4: 11 ms after t1 by our clock. Round trip 11 ms minus 1 ms at the server.
        let t4 = Timestamp(T1.0 + (11u64 << 32) / 1000);
        let s = r.sample(server, T1, t4);
        assert!((s.delay.as_micros() as i64 - 10_000).abs() <= 1, "{s:?}");
        // ((1.5) + (1.501 - 0.011)) / 2 = 1.495 s
        assert!((s.offset.0 - 1_495_000_000).abs() <= 2, "{s:?}");
        assert_eq!(s.offset.describe(), "+1.495 s");
        assert_eq!(Offset(-3_214_000).describe(), "-3.214 ms");
    }

    #[test]
    fn bad_replies_are_refused() {
        assert_eq!(check(&[0x24; 47], T1), Err(Refusal::Short(47)));
        assert_eq!(check(&reply(0x23, 2, T1), T1), Err(Refusal::Mode(3)));
        assert_eq!(check(&reply(0xE4, 2, T1), T1), Err(Refusal::Unsynchronised));
        assert_eq!(check(&reply(0x24, 0, T1), T1), Err(Refusal::Stratum(0)));
        assert_eq!(check(&reply(0x24, 16, T1), T1), Err(Refusal::Stratum(16)));
        assert_eq!(
            check(&reply(0x24, 2, Timestamp(T1.0 + 1)), T1),
            Err(Refusal::Origin)
        );
        let mut silent = reply(0x24, 2, T1);
        silent[40..48].fill(0);
        assert_eq!(check(&silent, T1), Err(Refusal::NoTransmit));
    }

    #[test]
    fn timestamps_subtract_across_the_2036_era_change() {
        let before = Timestamp(0xFFFF_FFFF_0000_0000);
        let after = Timestamp(0x0000_0001_0000_0000);
        assert_eq!(after.minus(before), 2_000_000_000);
        assert_eq!(before.minus(after), -2_000_000_000);
        let unix = Timestamp::from_system(UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(unix.0 >> 32, UNIX_OFFSET + 1);
        assert_eq!(unix.0 & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn the_status_file_round_trips_and_reads_as_one_line() {
        let s = Status {
            server: Some("192.0.2.123".into()),
            offset: Some("+3.214 ms".into()),
            at: Some(0),
            how: Some("slewed".into()),
            failure: Some("no reply\nfrom anyone".into()),
        };
        let back = Status::parse(&s.render());
        assert_eq!(back.failure.as_deref(), Some("no reply from anyone"));
        assert_eq!(
            back.describe(),
            "last sync 1970-01-01T00:00:00 UTC from 192.0.2.123 (slewed +3.214 ms); \
             last attempt failed: no reply from anyone"
        );
        assert_eq!(Status::default().describe(), "never synchronised");
    }
}
