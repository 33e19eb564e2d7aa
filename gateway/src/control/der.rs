//! Just enough DER to describe a certificate for `show tls` (RFC 5280 §4.1):
//! Certificate → TBSCertificate → [version] serial signature issuer validity subject
//! subjectPublicKeyInfo … [3] extensions (subjectAltName).

/// Subject, issuer (`CN=…, O=…`) and subject alternative names (`DNS:mx.example.com`,
/// `IP:192.0.2.1`) of a DER certificate; `None` for anything unexpected.
pub fn names(cert: &[u8]) -> Option<(String, String, Vec<String>)> {
    let (_, cert_body, _) = element(cert)?;
    let (_, mut tbs, _) = element(cert_body)?;
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xA0 {
        tbs = rest;
    }
    tbs = element(tbs)?.2; // serial
    tbs = element(tbs)?.2; // signature algorithm
    let (_, issuer, rest) = element(tbs)?;
    let rest = element(rest)?.2; // validity
    let (_, subject, mut rest) = element(rest)?;
    rest = element(rest)?.2; // subjectPublicKeyInfo
    let mut sans = Vec::new();
    while let Some((tag, content, after)) = element(rest) {
        if tag == 0xA3 {
            sans = alt_names(element(content)?.1).unwrap_or_default();
        }
        rest = after;
    }
    Some((name(subject)?, name(issuer)?, sans))
}

/// A Name (SEQUENCE of SET of {OID, value}) with the usual attribute abbreviations.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (_, set, rest) = element(rdns)?;
        let (_, pair, _) = element(set)?;
        let (_, oid, value) = element(pair)?;
        let (_, value, _) = element(value)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0A] => "O",
            [0x55, 0x04, 0x0B] => "OU",
            _ => "",
        };
        if !label.is_empty() {
            parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
        }
        rdns = rest;
    }
    Some(parts.join(", "))
}

/// The subjectAltName extension's DNS names and IP addresses, from the extensions list.
fn alt_names(mut extensions: &[u8]) -> Option<Vec<String>> {
    while !extensions.is_empty() {
        let (_, extension, rest) = element(extensions)?;
        let (_, oid, fields) = element(extension)?;
        if oid == [0x55, 0x1D, 0x11] {
            // `critical` (a BOOLEAN) may come before the OCTET STRING.
            let (tag, value, after) = element(fields)?;
            let octets = if tag == 0x01 {
                element(after)?.1
            } else {
                value
            };
            let (_, mut general, _) = element(octets)?;
            let mut out = Vec::new();
            while !general.is_empty() {
                let (tag, value, rest) = element(general)?;
                match (tag, value.len()) {
                    (0x82, _) => out.push(format!("DNS:{}", String::from_utf8_lossy(value))),
                    (0x87, 4) => out.push(format!(
                        "IP:{}",
                        std::net::Ipv4Addr::new(value[0], value[1], value[2], value[3])
                    )),
                    (0x87, 16) => {
                        let bytes: [u8; 16] = value.try_into().ok()?;
                        out.push(format!("IP:{}", std::net::Ipv6Addr::from(bytes)));
                    }
                    _ => {}
                }
                general = rest;
            }
            return Some(out);
        }
        extensions = rest;
    }
    Some(Vec::new())
}

/// `notAfter` as `YYYY-MM-DD HH:MM:SS UTC`, or `None` for anything unexpected.
pub fn not_after(cert: &[u8]) -> Option<String> {
    let (_, cert_body, _) = element(cert)?;
    let (_, mut tbs, _) = element(cert_body)?;
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xA0 {
        tbs = rest; // explicit version
    }
    // serial, signature algorithm, issuer
    for _ in 0..3 {
        tbs = element(tbs)?.2;
    }
    let (_, validity, _) = element(tbs)?;
    let after = element(element(validity)?.2)?;
    let text = std::str::from_utf8(after.1).ok()?;
    let full = match after.0 {
        0x17 => {
            // UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280 §4.1.2.5.1).
            let yy: u32 = text.get(0..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 => text.to_string(),
        _ => return None,
    };
    let d = |r: std::ops::Range<usize>| full.get(r);
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        d(0..4)?,
        d(4..6)?,
        d(6..8)?,
        d(8..10)?,
        d(10..12)?,
        d(12..14)?
    ))
}

/// The leaf's public key: `ECDSA P-256`, `ECDSA P-384`, `RSA 2048`, `Ed25519`, or `None`
/// for anything else.
pub fn key(cert: &[u8]) -> Option<String> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    let (_, cert_body, _) = element(cert)?;
    let (_, mut tbs, _) = element(cert_body)?;
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xA0 {
        tbs = rest;
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        tbs = element(tbs)?.2;
    }
    let (_, spki, _) = element(tbs)?;
    let (_, algorithm, bits) = element(spki)?;
    let (_, oid, params) = element(algorithm)?;
    match oid {
        RSA => {
            // BIT STRING: unused-bits byte, then RSAPublicKey { modulus, exponent }.
            let (_, bits, _) = element(bits)?;
            let (_, public, _) = element(bits.get(1..)?)?;
            let (_, modulus, _) = element(public)?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            Some(format!("RSA {}", significant * 8))
        }
        EC => match element(params)?.1 {
            P256 => Some("ECDSA P-256".into()),
            P384 => Some("ECDSA P-384".into()),
            _ => Some("ECDSA".into()),
        },
        ED25519 => Some("Ed25519".into()),
        _ => None,
    }
}

/// One TLV: tag, content, the bytes after it.
fn element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((tag, data.get(start..end)?, data.get(end..)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_expiry_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            super::not_after(cert.der()).as_deref(),
            Some("2031-07-09 00:00:00 UTC")
        );
        assert_eq!(super::not_after(b"\x30\x82\xff"), None);
    }

    #[test]
    fn reads_subject_issuer_and_alternative_names() {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test Root");
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Org");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["mx.example.com".into(), "192.0.2.7".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mx.example.com");
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let (subject, issuer, sans) = super::names(cert.der()).unwrap();
        assert_eq!(subject, "CN=mx.example.com");
        assert_eq!(issuer, "CN=Test Root, O=Example Org");
        assert_eq!(sans, ["DNS:mx.example.com", "IP:192.0.2.7"]);
        assert_eq!(super::names(b"\x30\x03\x02\x01\x01"), None);
    }

    #[test]
    fn names_the_key_type_and_size() {
        let pem = include_bytes!("../tls/testdata/rsa-2048.pem");
        let rsa = crate::tls::pem_certificates(pem).unwrap();
        assert_eq!(super::key(rsa[0].as_ref()).as_deref(), Some("RSA 2048"));
        for (alg, name) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, "ECDSA P-256"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
            (&rcgen::PKCS_ED25519, "Ed25519"),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let params = rcgen::CertificateParams::new(vec!["mx.test".into()]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(super::key(cert.der()).as_deref(), Some(name));
        }
        assert_eq!(super::key(b"\x30\x03\x02\x01\x01"), None);
    }
}
