//! The candidate configuration: a TOML table edited by `set`/`delete` paths, compared
//! with the running configuration by `show diff`, and sent whole on `commit`.
//!
//! Paths follow the file: `hostname VALUE`, `SECTION KEY VALUE` for `[section]`, and
//! `SECTION ID KEY VALUE` for `[[section]]` entries identified by their name or address
//! (`domain example.com next_hops 10.0.0.5:25`).

use super::schema::{self, Key, Kind, Section, Shape};
use super::words::{Failure, Word};
use toml::{Table, Value};

/// Where a path points.
pub enum Target {
    Key {
        section: &'static Section,
        id: Option<String>,
        key: &'static Key,
    },
    Section(&'static Section),
    Entry(&'static Section, String),
}

/// Resolves `words` (the path, possibly followed by values); returns the target and the
/// number of words it used.
pub fn resolve(words: &[Word], base: usize) -> Result<(Target, usize), Failure> {
    let Some(first) = words.first() else {
        return Err(Failure::end("a configuration path is missing").choices(top_choices()));
    };
    if let Some(key) = schema::top_key(&first.text) {
        let section = &schema::SECTIONS[0];
        return Ok((
            Target::Key {
                section,
                id: None,
                key,
            },
            1,
        ));
    }
    let Some(section) = schema::section(&first.text) else {
        return Err(
            Failure::at(base, format!("unknown word \"{}\"", first.text)).choices(top_choices()),
        );
    };
    let keys = || {
        section
            .keys
            .iter()
            .map(|k| k.name.to_string())
            .collect::<Vec<_>>()
    };
    match section.shape {
        Shape::Top => unreachable_top(),
        Shape::Table => match words.get(1) {
            None => Ok((Target::Section(section), 1)),
            Some(w) => match section.key(&w.text) {
                Some(key) => Ok((
                    Target::Key {
                        section,
                        id: None,
                        key,
                    },
                    2,
                )),
                None => Err(Failure::at(
                    base + 1,
                    format!("\"{}\" is not a key of [{}]", w.text, section.name),
                )
                .choices(keys())),
            },
        },
        Shape::Array { .. } => match (words.get(1), words.get(2)) {
            (None, _) => Ok((Target::Section(section), 1)),
            (Some(id), None) => Ok((Target::Entry(section, id.text.clone()), 2)),
            (Some(id), Some(w)) => match section.key(&w.text) {
                Some(key) => Ok((
                    Target::Key {
                        section,
                        id: Some(id.text.clone()),
                        key,
                    },
                    3,
                )),
                None => Err(Failure::at(
                    base + 2,
                    format!("\"{}\" is not a key of {}", w.text, section.name),
                )
                .choices(keys())),
            },
        },
    }
}

fn unreachable_top() -> Result<(Target, usize), Failure> {
    Err(Failure::plain("internal: the top section has no name"))
}

/// Every first word of a path.
pub fn top_choices() -> Vec<String> {
    schema::SECTIONS
        .iter()
        .flat_map(|s| {
            if s.name.is_empty() {
                s.keys.iter().map(|k| k.name.to_string()).collect()
            } else {
                vec![s.name.to_string()]
            }
        })
        .collect()
}

/// The value words typed for `kind` (already checked where the config's own parsers can).
pub fn value(kind: Kind, words: &[Word], base: usize) -> Result<Value, Failure> {
    let Some(first) = words.first() else {
        return Err(Failure::end(format!(
            "a value is missing: {}",
            kind.placeholder()
        )));
    };
    if words.len() > 1 && !matches!(kind, Kind::List(_)) {
        return Err(Failure::at(
            base + 1,
            "one value only (quote a value with blanks)",
        ));
    }
    let text = first.text.as_str();
    let bad = |why: String| Failure::at(base, why);
    Ok(match kind {
        Kind::Str(_) => Value::String(text.into()),
        Kind::List(_) => Value::Array(
            words
                .iter()
                .flat_map(|w| w.text.split(','))
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        ),
        Kind::Int => Value::Integer(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad(format!("\"{text}\" is not a whole number")))?,
        ),
        Kind::Float => Value::Float(
            text.parse()
                .map_err(|_| bad(format!("\"{text}\" is not a number")))?,
        ),
        Kind::Bool => Value::Boolean(match text {
            "true" | "yes" | "on" => true,
            "false" | "no" | "off" => false,
            _ => {
                return Err(bad(format!("\"{text}\" is not true or false"))
                    .choices(vec!["true".into(), "false".into()]));
            }
        }),
        Kind::Enum(choices) => {
            if !choices.contains(&text) {
                return Err(bad(format!("\"{text}\" is not a valid choice"))
                    .choices(choices.iter().map(|c| c.to_string()).collect()));
            }
            Value::String(text.into())
        }
        Kind::Size => {
            crate::config::parse_bytes(text).map_err(bad)?;
            match text.parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => Value::String(text.into()),
            }
        }
        Kind::Span => {
            crate::config::parse_span(text).map_err(bad)?;
            Value::String(text.into())
        }
    })
}

/// `set`: creates tables and entries on the way.
pub fn set(table: &mut Table, target: &Target, value: Option<Value>) -> Result<(), Failure> {
    match target {
        Target::Key { section, id, key } => {
            let value = value.ok_or_else(|| Failure::end("a value is missing"))?;
            let holder = holder(table, section, id.as_deref(), true)
                .ok_or_else(|| Failure::plain("internal: no place for the key"))?;
            holder.insert(key.name.to_string(), value);
        }
        Target::Section(section) => {
            if let Shape::Array { placeholder, .. } = section.shape {
                return Err(Failure::end(format!(
                    "name the entry: {} <{placeholder}>",
                    section.name
                )));
            }
            table
                .entry(section.name)
                .or_insert_with(|| Value::Table(Table::new()));
        }
        Target::Entry(section, id) => {
            holder(table, section, Some(id), true);
        }
    }
    Ok(())
}

/// `delete`: a key goes back to its default; a section or entry is removed whole.
pub fn delete(table: &mut Table, target: &Target) -> Result<(), Failure> {
    let missing = || Failure::end("that is not set in the candidate configuration");
    match target {
        Target::Key { section, id, key } => {
            if let Shape::Array { id: id_key, .. } = section.shape
                && key.name == id_key
            {
                return Err(Failure::end(format!(
                    "delete the whole entry instead: delete {} {}",
                    section.name,
                    id.as_deref().unwrap_or("")
                )));
            }
            let holder = holder(table, section, id.as_deref(), false).ok_or_else(missing)?;
            holder.remove(key.name).ok_or_else(missing)?;
        }
        Target::Section(section) => {
            table.remove(section.name).ok_or_else(missing)?;
        }
        Target::Entry(section, id) => {
            let Shape::Array { id: id_key, .. } = section.shape else {
                return Err(missing());
            };
            let list = table
                .get_mut(section.name)
                .and_then(Value::as_array_mut)
                .ok_or_else(missing)?;
            let before = list.len();
            list.retain(|v| v.get(id_key).and_then(Value::as_str) != Some(id.as_str()));
            if list.len() == before {
                return Err(missing().choices(entry_ids(table, section)));
            }
            if list.is_empty() {
                table.remove(section.name);
            }
        }
    }
    Ok(())
}

/// The identifiers of a `[[section]]`'s entries (for completion and errors).
pub fn entry_ids(table: &Table, section: &Section) -> Vec<String> {
    let Shape::Array { id, .. } = section.shape else {
        return Vec::new();
    };
    table
        .get(section.name)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.get(id).and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The table holding keys for `section` (and entry `id`), created when `create`.
fn holder<'t>(
    table: &'t mut Table,
    section: &Section,
    id: Option<&str>,
    create: bool,
) -> Option<&'t mut Table> {
    match section.shape {
        Shape::Top => Some(table),
        Shape::Table => {
            if create && !table.get(section.name).is_some_and(Value::is_table) {
                table.insert(section.name.into(), Value::Table(Table::new()));
            }
            table.get_mut(section.name)?.as_table_mut()
        }
        Shape::Array { id: id_key, .. } => {
            let id = id?;
            if create && !table.get(section.name).is_some_and(Value::is_array) {
                table.insert(section.name.into(), Value::Array(Vec::new()));
            }
            let list = table.get_mut(section.name)?.as_array_mut()?;
            let pos = list
                .iter()
                .position(|v| v.get(id_key).and_then(Value::as_str) == Some(id));
            let pos = match pos {
                Some(p) => p,
                None if create => {
                    let mut entry = Table::new();
                    entry.insert(id_key.into(), Value::String(id.into()));
                    list.push(Value::Table(entry));
                    list.len() - 1
                }
                None => return None,
            };
            list.get_mut(pos)?.as_table_mut()
        }
    }
}

/// The text a table is committed and shown as.
pub fn render(table: &Table) -> String {
    toml::to_string(table).unwrap_or_default()
}

/// Configuration text as the console shows it (comments and layout normalized), so
/// that the running text and the candidate compare line by line.
pub fn normalize(text: &str) -> Result<Table, String> {
    text.parse::<Table>().map_err(|e| e.message().to_string())
}

/// Changed lines with two lines of context, `+` added, `-` removed.
pub fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence, from the end; the files are small.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    let near = |k: usize| {
        let lo = k.saturating_sub(2);
        let hi = (k + 3).min(ops.len());
        ops[lo..hi].iter().any(|(op, _)| *op != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near(k) {
            if skipped && !out.is_empty() {
                out.push_str("  ...\n");
            }
            skipped = false;
            out.push_str(&format!("{op} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::words::split;
    use super::*;

    fn apply(table: &mut Table, line: &str) -> Result<(), Failure> {
        let words = split(line);
        let (target, used) = resolve(&words, 0)?;
        let value = match &target {
            Target::Key { key, .. } => Some(value(key.kind, &words[used..], used)?),
            _ => None,
        };
        set(table, &target, value)
    }

    #[test]
    fn paths_create_entries_and_typed_values() {
        let mut t = Table::new();
        apply(&mut t, "set_unused").unwrap_err();
        apply(
            &mut t,
            "domain example.com next_hops 10.0.0.5:25 10.0.0.6:25",
        )
        .unwrap();
        apply(&mut t, "domain example.com tls required").unwrap();
        apply(&mut t, "limits max_recipients 50").unwrap();
        apply(&mut t, "limits max_message_size 10MiB").unwrap();
        let text = render(&t);
        assert!(text.contains("[[domain]]\nname = \"example.com\"\nnext_hops = [\"10.0.0.5:25\", \"10.0.0.6:25\"]\ntls = \"required\""), "{text}");
        assert!(text.contains("max_recipients = 50"), "{text}");
        let e = apply(&mut t, "domain example.com tls maybe").unwrap_err();
        assert_eq!(e.word, Some(3));
        assert!(e.choices.contains(&"required".to_string()));
        let e = apply(&mut t, "limits max_recipients many").unwrap_err();
        assert_eq!(e.word, Some(2));
        let e = apply(&mut t, "limits max_recipents 5").unwrap_err();
        assert_eq!(e.word, Some(1));
        let words = split("domain example.com");
        let (target, _) = resolve(&words, 0).unwrap();
        delete(&mut t, &target).unwrap();
        assert!(!render(&t).contains("example.com"));
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n");
        assert_eq!(d, "  b\n  c\n- d\n+ D\n  e\n  f\n");
    }
}
