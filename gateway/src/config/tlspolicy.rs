//! The TLS policy towards a next hop: `none | opportunistic | required | verify | pin`, and an
//! optional client certificate presented to it.
//!
//! Written as a string (`tls = "required"`, the form older configurations use) or a table
//! (`tls = { policy = "pin", pins = ["base64"] }`). Owns the syntax and the checks that the
//! named files load; the rustls configuration is built by [`crate::tls::ClientConfigs`] and
//! enforced by the delivery client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext only, even if the peer offers STARTTLS.
    None,
    /// STARTTLS when offered, any certificate; a failed handshake moves on to the next hop.
    Opportunistic,
    /// STARTTLS mandatory, any certificate.
    Required,
    /// STARTTLS mandatory; the chain must lead to the WebPKI roots (or `ca`) and the
    /// certificate must name the next hop (or `name`).
    Verify,
    /// STARTTLS mandatory; the leaf's public key (SPKI SHA-256) must be one of `pins`.
    Pin,
}

/// One route's policy. Hashable: destinations sharing connections must agree on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsPolicy {
    pub mode: TlsMode,
    /// SHA-256 digests of acceptable leaf SubjectPublicKeyInfos (`pin`).
    pub pins: Vec<Pin>,
    /// PEM trust anchors replacing the WebPKI roots (`verify`).
    pub ca: Option<PathBuf>,
    /// The name the certificate must carry (and SNI); default: the next hop's host name.
    pub name: Option<String>,
    /// PEM chain and key presented when the backend asks for a client certificate.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// SHA-256 of a DER SubjectPublicKeyInfo, written in base64 (as `openssl … | base64`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

impl TlsPolicy {
    pub const NONE: TlsPolicy = TlsPolicy::mode(TlsMode::None);
    pub const OPPORTUNISTIC: TlsPolicy = TlsPolicy::mode(TlsMode::Opportunistic);
    pub const REQUIRED: TlsPolicy = TlsPolicy::mode(TlsMode::Required);

    pub const fn mode(mode: TlsMode) -> TlsPolicy {
        TlsPolicy {
            mode,
            pins: Vec::new(),
            ca: None,
            name: None,
            client_certificate: None,
            client_key: None,
        }
    }

    /// The mail waits rather than go without (authenticated) TLS.
    pub fn mandatory(&self) -> bool {
        matches!(
            self.mode,
            TlsMode::Required | TlsMode::Verify | TlsMode::Pin
        )
    }

    /// Every problem as (sub-key, value, problem); `key` is where the policy sits.
    pub fn problems(&self, key: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut add = |sub: &str, value: String, problem: String| {
            out.push((format!("{key}.{sub}"), value, problem));
        };
        if self.mode == TlsMode::Pin && self.pins.is_empty() {
            add(
                "pins",
                "[]".into(),
                "policy pin needs at least one pin".into(),
            );
        }
        if self.mode != TlsMode::Pin && !self.pins.is_empty() {
            add(
                "pins",
                String::new(),
                "only used with policy = \"pin\"".into(),
            );
        }
        if let Some(ca) = &self.ca
            && self.mode != TlsMode::Verify
        {
            add(
                "ca",
                ca.display().to_string(),
                "only used with policy = \"verify\"".into(),
            );
        }
        if let Some(name) = &self.name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            add("name", name.clone(), "not a host name or IP address".into());
        }
        match (&self.client_certificate, &self.client_key) {
            // Whether the files load and belong together is checked by `tls::files`.
            (Some(_), Some(_)) => {}
            (Some(_), None) => add(
                "client_key",
                String::new(),
                "required with client_certificate".into(),
            ),
            (None, Some(_)) => add(
                "client_certificate",
                String::new(),
                "required with client_key".into(),
            ),
            (None, None) => {}
        }
        if self.mode == TlsMode::None && self.client_certificate.is_some() {
            add(
                "client_certificate",
                String::new(),
                "policy none never starts TLS".into(),
            );
        }
        out
    }
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy::OPPORTUNISTIC
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verify => "verify",
            TlsMode::Pin => "pin",
        })
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pin, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.trim().trim_start_matches("sha256/"))
            .map_err(|_| serde::de::Error::custom(format!("pin {text:?} is not base64")))?;
        let digest: [u8; 32] = bytes.try_into().map_err(|_| {
            serde::de::Error::custom(format!("pin {text:?} is not a SHA-256 digest (32 bytes)"))
        })?;
        Ok(Pin(digest))
    }
}

/// The table form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    policy: TlsMode,
    #[serde(default)]
    pins: Vec<Pin>,
    ca: Option<PathBuf>,
    name: Option<String>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for TlsPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TlsPolicy, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TlsPolicy;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"none\", \"opportunistic\", \"required\", \"verify\", \"pin\" or a table { policy = … }")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TlsPolicy, E> {
                let mode = TlsMode::deserialize(serde::de::value::StrDeserializer::<E>::new(s))?;
                Ok(TlsPolicy::mode(mode))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TlsPolicy, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(TlsPolicy {
                    mode: t.policy,
                    pins: t.pins,
                    ca: t.ca,
                    name: t.name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()),
                    client_certificate: t.client_certificate,
                    client_key: t.client_key,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        tls: TlsPolicy,
    }

    fn parse(text: &str) -> Result<TlsPolicy, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.tls)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_string_form_keeps_old_configurations_valid() {
        assert_eq!(parse("tls = \"required\"").unwrap(), TlsPolicy::REQUIRED);
        assert_eq!(parse("tls = \"none\"").unwrap(), TlsPolicy::NONE);
        assert!(
            parse("tls = \"sometimes\"")
                .unwrap_err()
                .contains("sometimes")
        );
    }

    #[test]
    fn the_table_form_carries_pins_ca_name_and_client_identity() {
        let pin = STANDARD.encode([7u8; 32]);
        let p = parse(&format!(
            "tls = {{ policy = \"pin\", pins = [\"{pin}\"], name = \"MX.Example.com.\", client_certificate = \"/c.pem\", client_key = \"/k.pem\" }}"
        ))
        .unwrap();
        assert_eq!(p.mode, TlsMode::Pin);
        assert_eq!(p.pins, [Pin([7u8; 32])]);
        assert_eq!(p.name.as_deref(), Some("mx.example.com"));
        assert!(p.mandatory());
        assert!(
            parse("tls = { policy = \"pin\", pins = [\"YWJj\"] }")
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(
            parse("tls = { policy = \"verify\", cafile = \"x\" }")
                .unwrap_err()
                .contains("cafile")
        );
    }

    #[test]
    fn inconsistent_tables_are_reported_by_key() {
        let p = parse("tls = { policy = \"pin\" }").unwrap();
        let problems = p.problems("domain[0].tls");
        assert_eq!(problems[0].0, "domain[0].tls.pins", "{problems:?}");
        let p =
            parse("tls = { policy = \"required\", ca = \"/nonexistent\", client_key = \"/k\" }")
                .unwrap();
        let keys: Vec<String> = p.problems("t").into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["t.ca", "t.client_certificate"]);
    }
}
