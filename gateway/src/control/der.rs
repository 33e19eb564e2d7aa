//! Just enough DER to read a certificate's expiry for `show tls` (RFC 5280 §4.1):
//! Certificate → TBSCertificate → [version] serial signature issuer Validity.

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
}
