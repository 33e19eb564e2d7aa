use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use ring::digest::{SHA256, SHA512, digest};

struct Chain {
    leaf: CertificateDer<'static>,
    ca: CertificateDer<'static>,
}

/// A CA and a leaf for `names`, valid from `from` to `until` (years).
fn chain(names: &[&str], from: i32, until: i32) -> Chain {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "TA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.not_before = rcgen::date_time_ymd(from, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(until, 1, 1);
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    Chain {
        leaf: leaf.der().clone(),
        ca: ca.der().clone(),
    }
}

fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
    webpki::EndEntityCert::try_from(cert)
        .unwrap()
        .subject_public_key_info()
        .as_ref()
        .to_vec()
}

fn record(usage: u8, selector: u8, matching: u8, cert: &CertificateDer<'_>) -> Tlsa {
    let selected = match selector {
        0 => cert.as_ref().to_vec(),
        _ => spki(cert),
    };
    let data = match matching {
        0 => selected,
        1 => digest(&SHA256, &selected).as_ref().to_vec(),
        _ => digest(&SHA512, &selected).as_ref().to_vec(),
    };
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

fn now() -> UnixTime {
    UnixTime::now()
}

#[test]
fn dane_ee_matches_every_selector_and_matching_type() {
    let c = chain(&["mx.example.net"], 2020, 2090);
    for selector in 0..=1 {
        for matching in 0..=2 {
            let r = record(DANE_EE, selector, matching, &c.leaf);
            assert!(r.usable(), "{r}");
            assert_eq!(check(&[r], "mx.example.net", &c.leaf, &[], now()), Ok(()));
        }
    }
}

#[test]
fn dane_ee_ignores_name_and_expiry() {
    let c = chain(&["other.example"], 2000, 2001);
    let r = record(DANE_EE, 1, 1, &c.leaf);
    assert_eq!(check(&[r], "mx.example.net", &c.leaf, &[], now()), Ok(()));
}

#[test]
fn a_different_key_matches_no_record() {
    let presented = chain(&["mx.example.net"], 2020, 2090);
    let published = chain(&["mx.example.net"], 2020, 2090);
    let records = [
        record(DANE_EE, 1, 1, &published.leaf),
        record(DANE_TA, 0, 2, &published.ca),
    ];
    let e = check(
        &records,
        "mx.example.net",
        &presented.leaf,
        std::slice::from_ref(&presented.ca),
        now(),
    )
    .unwrap_err();
    assert_eq!(e.result, "tlsa-invalid");
}

#[test]
fn dane_ta_needs_the_chain_the_name_and_the_dates() {
    let c = chain(&["mx.example.net"], 2020, 2090);
    for (selector, matching) in [(0, 0), (0, 1), (1, 1), (1, 2)] {
        let ta = [record(DANE_TA, selector, matching, &c.ca)];
        let chain = [c.ca.clone()];
        assert_eq!(check(&ta, "mx.example.net", &c.leaf, &chain, now()), Ok(()));
        let wrong = check(&ta, "mx2.example.net", &c.leaf, &chain, now()).unwrap_err();
        assert_eq!(wrong.result, "certificate-host-mismatch");
        // The trust anchor must be presented: we keep no certificates of our own.
        let absent = check(&ta, "mx.example.net", &c.leaf, &[], now()).unwrap_err();
        assert_eq!(absent.result, "tlsa-invalid");
    }
    let old = chain(&["mx.example.net"], 2000, 2001);
    let ta = [record(DANE_TA, 1, 1, &old.ca)];
    let expired = check(
        &ta,
        "mx.example.net",
        &old.leaf,
        std::slice::from_ref(&old.ca),
        now(),
    )
    .unwrap_err();
    assert_eq!(expired.result, "certificate-expired");
}

#[test]
fn pkix_usages_and_unknown_types_are_unusable() {
    let c = chain(&["mx.example.net"], 2020, 2090);
    for r in [
        record(0, 0, 1, &c.ca),
        record(1, 1, 1, &c.leaf),
        Tlsa {
            matching: 3,
            ..record(DANE_EE, 1, 1, &c.leaf)
        },
        Tlsa {
            data: vec![1, 2, 3],
            ..record(DANE_EE, 1, 1, &c.leaf)
        },
    ] {
        assert!(!r.usable(), "{r}");
        assert!(
            check(
                &[r],
                "mx.example.net",
                &c.leaf,
                std::slice::from_ref(&c.ca),
                now()
            )
            .is_err()
        );
    }
}

#[test]
fn presentation_form_is_upper_case_hex() {
    let r = Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0xab, 0x01],
    };
    assert_eq!(r.to_string(), "3 1 1 AB01");
}
