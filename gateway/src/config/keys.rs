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
    use super::super::{admin, auth, boot, control, flow, network, relay, routes};
    use super::*;
    use serde::Deserialize;
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

    #[test]
    fn every_field_of_every_section_is_a_key_with_help() {
        let checked: Vec<(&str, BTreeSet<&str>)> = vec![
            ("", fields::<Config>()),
            ("listener", fields::<Listener>()),
            ("domain", fields::<Domain>()),
            ("route", fields::<routes::Route>()),
            ("routing", fields::<routes::Routing>()),
            ("routing.callout", fields::<routes::Callout>()),
            ("limits", fields::<Limits>()),
            ("tls", fields::<Tls>()),
            ("queue", fields::<Queue>()),
            ("delivery", fields::<Delivery>()),
            ("dns", fields::<Dns>()),
            ("log", fields::<Log>()),
            ("network", fields::<network::Network>()),
            ("relay", fields::<relay::Relay>()),
            ("auth", fields::<auth::Auth>()),
            ("auth.dkim", fields::<auth::DkimKey>()),
            ("flow", fields::<flow::Flow>()),
            ("admin", fields::<admin::Admin>()),
            ("admin.probe", fields::<admin::Probe>()),
            ("control", fields::<control::Control>()),
            ("boot", fields::<boot::Boot>()),
        ];
        for (path, fields) in &checked {
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
                checked.iter().any(|(p, _)| *p == path),
                "[{path}] is not held to a config type in this test"
            );
        }
    }

    #[test]
    fn the_field_reader_sees_renames_and_skips() {
        let admin = fields::<admin::Admin>();
        assert!(admin.contains("probe") && !admin.contains("probes"));
        assert!(!fields::<Domain>().contains("hops"));
    }
}
