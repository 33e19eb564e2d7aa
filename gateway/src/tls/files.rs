//! The files a configuration names for TLS, read and checked before the gateway runs on it:
//! CA bundles of `verify` policies, client certificates with their keys, the relay's
//! client CA and the extra CA of MTA-STS. `config` only checks the text; this is where `check-config`, `serve` and a
//! console `commit` learn that a named file is missing, unreadable or does not match.

use crate::config::{Config, ConfigError, TlsPolicy};

/// Every problem with a file the configuration names, each under its key.
pub fn check(config: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (key, path) in [
        ("tls.certificate", &config.tls.certificate),
        ("tls.private_key", &config.tls.private_key),
        ("tls.rsa_certificate", &config.tls.rsa_certificate),
        ("tls.rsa_private_key", &config.tls.rsa_private_key),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::metadata(path)
        {
            out.push(error(key, path.display(), format!("cannot be read: {e}")));
        }
    }
    if out.is_empty() {
        out.extend(served(config));
    }
    for (key, path) in [
        ("relay.client_ca", &config.relay.client_ca),
        ("mta_sts.ca", &config.mta_sts.ca),
    ] {
        if let Some(path) = path
            && let Err(e) = super::read_certificates(path)
        {
            out.push(error(key, path.display(), e));
        }
    }
    policy(&config.delivery.tls, "delivery.tls", &mut out);
    for (i, d) in config.domains.iter().enumerate() {
        if let Some(tls) = &d.tls {
            policy(tls, &format!("domain[{i}].tls"), &mut out);
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        if let Some(tls) = &r.tls {
            policy(tls, &format!("route[{i}].tls"), &mut out);
        }
    }
    out
}

/// The RSA certificate beside the first: it loads, its key belongs to it and is RSA, and
/// the first is not RSA (`certs::pair`).
fn served(config: &Config) -> Option<ConfigError> {
    let tls = &config.tls;
    let (Some(cert), Some(key)) = (&tls.rsa_certificate, &tls.rsa_private_key) else {
        return None;
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let load = |cert: &std::path::Path, key: &std::path::Path| {
        let (chain, private) = super::read_identity(cert, key)?;
        super::certs::certified(chain, private, &provider)
    };
    let rsa = match load(cert, key) {
        Ok(rsa) => rsa,
        Err(e) => return Some(error("tls.rsa_private_key", key.display(), e)),
    };
    let first = match (&tls.certificate, &tls.private_key) {
        (Some(cert), Some(key)) => match load(cert, key) {
            Ok(first) => Some(first),
            Err(e) => return Some(error("tls.private_key", key.display(), e)),
        },
        _ => None,
    };
    match super::certs::pair(first.as_deref(), &rsa) {
        Ok(()) => None,
        Err(super::TlsError::Setting { key: name, reason }) => {
            let value = match name {
                "tls.certificate" => tls.certificate.as_deref().unwrap_or(cert),
                _ => key,
            };
            Some(error(name, value.display(), reason))
        }
        Err(e) => Some(error("tls.rsa_certificate", cert.display(), e)),
    }
}

fn policy(tls: &TlsPolicy, key: &str, out: &mut Vec<ConfigError>) {
    if let Some(ca) = tls
        .ca
        .as_ref()
        .filter(|_| tls.mode == crate::config::TlsMode::Verify)
        && let Err(e) = super::read_certificates(ca)
    {
        out.push(error(&format!("{key}.ca"), ca.display(), e));
    }
    let (Some(cert), Some(key_file)) = (&tls.client_certificate, &tls.client_key) else {
        return;
    };
    match super::read_identity(cert, key_file) {
        Err(e) => out.push(error(
            &format!("{key}.client_certificate"),
            cert.display(),
            e,
        )),
        Ok((chain, private)) => {
            // The pair is only tried at a backend's certificate request otherwise: a
            // mismatch would defer mail instead of failing `check-config`.
            let provider = rustls::crypto::ring::default_provider();
            if let Err(e) = rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
                out.push(error(
                    &format!("{key}.client_key"),
                    key_file.display(),
                    format!(
                        "does not belong to the certificate in {} ({e})",
                        cert.display()
                    ),
                ));
            }
        }
    }
}

fn error(key: &str, value: impl std::fmt::Display, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.into(),
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "hostname = \"gw.test\"\ndata_dir = \"/tmp/x\"\n\
        [[listener]]\naddress = \"127.0.0.1:25\"\n";

    #[test]
    fn a_client_certificate_with_another_key_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mine = rcgen::generate_simple_self_signed(vec!["gw.test".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["gw.test".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let (key, wrong) = (dir.path().join("key.pem"), dir.path().join("other.pem"));
        std::fs::write(&cert, mine.cert.pem()).unwrap();
        std::fs::write(&key, mine.key_pair.serialize_pem()).unwrap();
        std::fs::write(&wrong, other.key_pair.serialize_pem()).unwrap();
        let problems = |key: &std::path::Path| {
            let policy = TlsPolicy {
                client_certificate: Some(cert.clone()),
                client_key: Some(key.to_path_buf()),
                ..TlsPolicy::REQUIRED
            };
            let mut out = Vec::new();
            super::policy(&policy, "t", &mut out);
            out
        };
        assert!(problems(&key).is_empty());
        let problems = problems(&wrong);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "t.client_key");
        assert_eq!(problems[0].value, wrong.display().to_string());
        assert!(
            problems[0]
                .problem
                .contains("does not belong to the certificate"),
            "{problems:?}"
        );
    }

    #[test]
    fn files_the_text_names_are_read_by_the_loader_not_by_config() {
        let text = format!(
            "{BASE}[relay]\nclient_ca = \"/nonexistent/ca.pem\"\nclient_names = [\"c.test\"]\n\
             [[domain]]\nname = \"example.com\"\nnext_hops = [\"10.0.0.1\"]\n\
             tls = {{ policy = \"verify\", ca = \"/nonexistent/route-ca.pem\" }}\n"
        );
        // The text is valid…
        assert!(Config::parse(&text).is_ok());
        // …what it names is not.
        let errors = crate::loader::parse(&text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            shown[0].starts_with("relay.client_ca = /nonexistent/ca.pem:"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("domain[0].tls.ca = /nonexistent/route-ca.pem:"),
            "{shown:?}"
        );
        assert_eq!(shown.len(), 2, "{shown:?}");
    }

    #[test]
    fn an_rsa_certificate_beside_the_first_must_be_rsa_and_is_named_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa_cert, rsa_key) = (dir.path().join("rsa.pem"), dir.path().join("rsa.key"));
        std::fs::write(&rsa_cert, include_str!("testdata/rsa-2048.pem")).unwrap();
        std::fs::write(&rsa_key, include_str!("testdata/rsa-2048.key")).unwrap();
        let ec = rcgen::generate_simple_self_signed(vec!["gw.test".into()]).unwrap();
        let (ec_cert, ec_key) = (dir.path().join("ec.pem"), dir.path().join("ec.key"));
        std::fs::write(&ec_cert, ec.cert.pem()).unwrap();
        std::fs::write(&ec_key, ec.key_pair.serialize_pem()).unwrap();
        let text = |first: Option<(&std::path::Path, &std::path::Path)>,
                    rsa: (&std::path::Path, &std::path::Path)| {
            let mut t = format!("{BASE}[tls]\n");
            if let Some((c, k)) = first {
                t += &format!(
                    "certificate = \"{}\"\nprivate_key = \"{}\"\n",
                    c.display(),
                    k.display()
                );
            }
            t + &format!(
                "rsa_certificate = \"{}\"\nrsa_private_key = \"{}\"\n",
                rsa.0.display(),
                rsa.1.display()
            )
        };
        // Beside the generated certificate, and beside a configured ECDSA one.
        assert!(crate::loader::parse(&text(None, (&rsa_cert, &rsa_key))).is_ok());
        let good = text(Some((&ec_cert, &ec_key)), (&rsa_cert, &rsa_key));
        assert!(crate::loader::parse(&good).is_ok());
        let shown = |t: String| -> Vec<String> {
            let errors = crate::loader::parse(&t).unwrap_err();
            errors.iter().map(|e| e.to_string()).collect()
        };
        let ec_in_rsa_slot = shown(text(None, (&ec_cert, &ec_key)));
        assert_eq!(ec_in_rsa_slot.len(), 1, "{ec_in_rsa_slot:?}");
        assert!(
            ec_in_rsa_slot[0].starts_with("tls.rsa_private_key = ")
                && ec_in_rsa_slot[0].contains("not an RSA key"),
            "{ec_in_rsa_slot:?}"
        );
        let rsa_first = shown(text(Some((&rsa_cert, &rsa_key)), (&rsa_cert, &rsa_key)));
        assert!(
            rsa_first[0].starts_with("tls.certificate = ") && rsa_first[0].contains("ECDSA"),
            "{rsa_first:?}"
        );
        let half = Config::parse(&format!("{BASE}[tls]\nrsa_certificate = \"/x.pem\"\n"));
        let half: Vec<String> = half.unwrap_err().iter().map(|e| e.to_string()).collect();
        assert!(half[0].starts_with("tls.rsa_private_key"), "{half:?}");
    }
}
