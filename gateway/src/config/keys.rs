//! The shape of `edgemx.toml` as data: every key of every section, the kind of value it
//! takes and a line of help. The console walks it for `set`/`delete` paths, `?` help, Tab
//! completion and the typing of values; validation proper stays with [`Config::parse`].
//!
//! Each section type lists its keys beside its fields (`impl Keys for Limits`), and the
//! tests below hold every list to the fields serde deserializes, so a field cannot be
//! added to the configuration without becoming a console key.
//!
//! [`Config::parse`]: super::Config::parse

/// A section type's keys, in the order the documentation gives them.
pub trait Keys {
    const KEYS: &'static [Key];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string; the placeholder says how it is written (`HOST`, `PATH`).
    Str(&'static str),
    /// A list of strings, typed as words or with commas.
    List(&'static str),
    Int,
    Float,
    Bool,
    Enum(&'static [&'static str]),
    /// Bytes: `4096` or `25MiB`.
    Size,
    /// Bytes, or this word (`auto`).
    SizeOr(&'static str),
    /// A duration: `30s`, `5m`.
    Span,
    /// `{ NAME = VALUE, … }`, set one pair at a time: the placeholders of name and value.
    Map(&'static str, &'static str),
    /// A table of its own: `[name]`, or `[parent.name]` inside a section.
    Table(&'static [Key]),
    /// `[[name]]`: entries told apart by the value of their `id` key.
    Entries {
        id: &'static str,
        placeholder: &'static str,
        keys: &'static [Key],
    },
}

pub const fn key(name: &'static str, kind: Kind, help: &'static str) -> Key {
    Key { name, kind, help }
}

/// The string form of a TLS policy; the table form (pins, CA, client certificate) goes
/// through the console's `import`.
pub const TLS_POLICY: Kind = Kind::Enum(&["none", "opportunistic", "required", "verify", "pin"]);

/// The next hops of a domain, route or `delivery.default_next_hops`.
pub const NEXT_HOPS: Kind = Kind::List("HOST[:PORT]|mx");

/// The key called `name` in `keys`.
pub fn find(keys: &'static [Key], name: &str) -> Option<&'static Key> {
    keys.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Delivery, Dns, Domain, Limits, Listener, Log, Queue, Tls};
    use super::super::{
        admin, auth, boot, console, control, flow, network, relay, routes, scan, ssh, syslog,
        transport,
    };
    use super::*;
    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde::de::{self, Deserializer, Visitor};
    use std::collections::BTreeSet;

    /// A deserializer that only records the field names a struct asks for: serde's own
    /// list of the keys a section accepts (renames applied, `skip` fields left out).
    struct FieldNames(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("field names recorded"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    fn fields<T: for<'de> Deserialize<'de>>() -> BTreeSet<&'static str> {
        let mut probe = FieldNames(None);
        let _ = T::deserialize(&mut probe);
        let fields = probe.0.expect("a struct with named fields");
        fields.iter().copied().collect()
    }

    /// The key list at `path` (dotted) under [`Config`]'s keys.
    fn node(path: &str) -> &'static [Key] {
        let mut keys = Config::KEYS;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            keys = match find(keys, part).map(|k| k.kind) {
                Some(Kind::Table(inner)) => inner,
                Some(Kind::Entries { keys: inner, .. }) => inner,
                other => panic!("{path}: {part} is not a section ({other:?})"),
            };
        }
        keys
    }

    /// Every section reachable from the top, dotted.
    fn sections(keys: &'static [Key], prefix: &str, out: &mut Vec<String>) {
        out.push(prefix.to_string());
        for k in keys {
            if let Kind::Table(inner) | Kind::Entries { keys: inner, .. } = k.kind {
                let path = format!(
                    "{prefix}{}{}",
                    if prefix.is_empty() { "" } else { "." },
                    k.name
                );
                sections(inner, &path, out);
            }
        }
    }

    /// A section's path, serde's field names of its type, and whether its type takes a
    /// given TOML text.
    type Held = (&'static str, BTreeSet<&'static str>, fn(&str) -> bool);

    fn hold<T: DeserializeOwned>(path: &'static str) -> Held {
        (path, fields::<T>(), |text| {
            toml::from_str::<T>(text).is_ok()
        })
    }

    /// Every section type, by its path under [`Config`].
    fn held() -> Vec<Held> {
        vec![
            hold::<Config>(""),
            hold::<Listener>("listener"),
            hold::<Domain>("domain"),
            hold::<routes::Route>("route"),
            hold::<routes::Routing>("routing"),
            hold::<routes::Callout>("routing.callout"),
            hold::<Limits>("limits"),
            hold::<Tls>("tls"),
            hold::<Queue>("queue"),
            hold::<Delivery>("delivery"),
            hold::<Dns>("dns"),
            hold::<Log>("log"),
            hold::<syslog::Syslog>("log.syslog"),
            hold::<network::Network>("network"),
            hold::<relay::Relay>("relay"),
            hold::<auth::Auth>("auth"),
            hold::<auth::DkimKey>("auth.dkim"),
            hold::<flow::Flow>("flow"),
            hold::<admin::Admin>("admin"),
            hold::<admin::Probe>("admin.probe"),
            hold::<control::Control>("control"),
            hold::<boot::Boot>("boot"),
            hold::<scan::Scan>("scan"),
            hold::<console::Console>("console"),
            hold::<transport::Dane>("dane"),
            hold::<transport::MtaSts>("mta_sts"),
            hold::<transport::Publish>("mta_sts.publish"),
            hold::<ssh::Ssh>("ssh"),
        ]
    }

    #[test]
    fn every_field_of_every_section_is_a_key_with_help() {
        let checked = held();
        for (path, fields, _) in &checked {
            let keys = node(path);
            let names: BTreeSet<&str> = keys.iter().map(|k| k.name).collect();
            assert_eq!(&names, fields, "[{path}]: keys and serde fields differ");
            assert_eq!(names.len(), keys.len(), "[{path}]: a key is listed twice");
            for k in keys {
                assert!(!k.help.is_empty(), "[{path}] {}: no help", k.name);
                if let Kind::Entries { id, .. } = k.kind {
                    let inner = node(format!("{path}.{}", k.name).trim_start_matches('.'));
                    assert!(
                        find(inner, id).is_some(),
                        "[{path}] {}: no key {id}",
                        k.name
                    );
                }
            }
        }
        let mut reachable = Vec::new();
        sections(Config::KEYS, "", &mut reachable);
        for path in reachable {
            assert!(
                checked.iter().any(|(p, _, _)| *p == path),
                "[{path}] is not held to a config type in this test"
            );
        }
    }

    /// The kinds that say what TOML a key takes: each sample (every choice of an
    /// enumeration) must deserialize into the section's type. Sections with required keys
    /// (entries) cannot be built from one key and are left to the documentation test.
    #[test]
    fn every_kind_is_a_value_its_section_takes() {
        let mut tried = 0;
        for (path, _, takes) in held() {
            if !takes("") {
                continue;
            }
            for k in node(path) {
                let samples: Vec<String> = match k.kind {
                    Kind::Enum(choices) => choices.iter().map(|c| format!("\"{c}\"")).collect(),
                    Kind::SizeOr(word) => vec![format!("\"{word}\""), "\"1MiB\"".into()],
                    Kind::Size => vec!["\"1MiB\"".into(), "4096".into()],
                    Kind::Span => vec!["\"30s\"".into()],
                    Kind::Int => vec!["7".into()],
                    Kind::Float => vec!["0.5".into(), "1".into()],
                    Kind::Bool => vec!["true".into()],
                    _ => continue,
                };
                for sample in samples {
                    tried += 1;
                    let text = format!("{} = {sample}", k.name);
                    assert!(takes(&text), "[{path}] {text}: refused by its type");
                }
            }
        }
        assert!(tried > 50, "only {tried} samples tried");
    }

    #[test]
    fn the_field_reader_sees_renames_and_skips() {
        let admin = fields::<admin::Admin>();
        assert!(admin.contains("probe") && !admin.contains("probes"));
        assert!(!fields::<Domain>().contains("hops"));
    }
}
