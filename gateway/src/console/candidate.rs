//! The candidate configuration: a TOML document edited by `set`/`delete` paths, compared
//! with the running configuration by `show diff`, and sent whole on `commit`.
//!
//! Paths follow the file and the key tree of `config::keys`: `hostname VALUE`,
//! `SECTION KEY VALUE` for `[section]`, `SECTION ID KEY VALUE` for `[[section]]` entries
//! identified by their name or address (`domain example.com next_hops 10.0.0.5:25`), and
//! the same inside a section (`routing callout timeout 5s`, `auth dkim SELECTOR key PATH`).
//!
//! The candidate is a `toml_edit` document, not a table: an edit touches only the value it
//! sets, so the operator's comments, blank lines and key order survive a commit.

use super::schema::{self, Key, Kind};
use super::words::{Failure, Word};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// Where a path points: the sections on the way (outermost first) and the key, if the
/// path ends at one.
pub struct Target {
    pub steps: Vec<Step>,
    pub key: Option<&'static Key>,
}

/// A section on the way: `[name]`, or `[[name]]` with the entry's identifier (none when
/// the path names all entries).
pub struct Step {
    pub key: &'static Key,
    pub id: Option<String>,
}

/// Configuration text as a document; the error is the parser's message.
pub fn document(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| e.message().to_string())
}

/// The text a document is shown and committed as: the file as the operator wrote it,
/// with the edits.
pub fn render(doc: &DocumentMut) -> String {
    doc.to_string()
}

/// `set PATH VALUE…`, the words after `set`.
pub fn set_words(doc: &mut DocumentMut, path: &[Word]) -> Result<(), Failure> {
    let (target, used) = resolve(path, 1)?;
    let value = match target.key {
        Some(key) => Some(value(key.kind, &path[used..], 1 + used)?),
        None => None,
    };
    set(doc, &target, value)
}

/// `delete PATH`, the words after `delete`.
pub fn delete_words(doc: &mut DocumentMut, path: &[Word]) -> Result<(), Failure> {
    let (target, _) = resolve(path, 1)?;
    delete(doc, &target)
}

/// Resolves `words` (the path, possibly followed by values); returns the target and the
/// number of words it used. `base` is the index of the first word in the line.
pub fn resolve(words: &[Word], base: usize) -> Result<(Target, usize), Failure> {
    let mut keys = schema::root();
    let mut steps: Vec<Step> = Vec::new();
    let mut i = 0;
    loop {
        let Some(word) = words.get(i) else {
            if steps.is_empty() {
                return Err(Failure::end("a configuration path is missing").choices(top_choices()));
            }
            return Ok((Target { steps, key: None }, i));
        };
        let Some(key) = schema::find(keys, &word.text) else {
            let message = match steps.last() {
                None => format!("unknown word \"{}\"", word.text),
                Some(Step { id: None, .. }) => {
                    format!("\"{}\" is not a key of [{}]", word.text, dotted(&steps))
                }
                Some(_) => format!("\"{}\" is not a key of {}", word.text, dotted(&steps)),
            };
            return Err(Failure::at(base + i, message).choices(names(keys)));
        };
        i += 1;
        match key.kind {
            Kind::Table(inner) => {
                steps.push(Step { key, id: None });
                keys = inner;
            }
            Kind::Entries { keys: inner, .. } => {
                let id = words.get(i).map(|w| w.text.clone());
                let named = id.is_some();
                steps.push(Step { key, id });
                if !named {
                    return Ok((Target { steps, key: None }, i));
                }
                i += 1;
                keys = inner;
            }
            _ => {
                return Ok((
                    Target {
                        steps,
                        key: Some(key),
                    },
                    i,
                ));
            }
        }
    }
}

/// Every first word of a path.
pub fn top_choices() -> Vec<String> {
    names(schema::root())
}

fn names(keys: &[Key]) -> Vec<String> {
    keys.iter().map(|k| k.name.to_string()).collect()
}

/// `auth.dkim`: the sections of a path as TOML names them.
fn dotted(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| s.key.name)
        .collect::<Vec<_>>()
        .join(".")
}

/// `auth dkim edge2026r`: the sections of a path as the console types them.
fn spoken(steps: &[Step]) -> String {
    let mut words: Vec<&str> = Vec::new();
    for s in steps {
        words.push(s.key.name);
        words.extend(s.id.as_deref());
    }
    words.join(" ")
}

/// The value words typed for `kind` (already checked where the config's own parsers can).
pub fn value(kind: Kind, words: &[Word], base: usize) -> Result<Value, Failure> {
    let Some(first) = words.first() else {
        return Err(Failure::end(format!(
            "a value is missing: {}",
            schema::placeholder(kind)
        )));
    };
    let allowed = match kind {
        Kind::List(_) => usize::MAX,
        Kind::Map(..) => 2,
        _ => 1,
    };
    if words.len() > allowed {
        return Err(Failure::at(
            base + allowed,
            "one value only (quote a value with blanks)",
        ));
    }
    let text = first.text.as_str();
    let bad = |why: String| Failure::at(base, why);
    Ok(match kind {
        Kind::Str(_) => Value::from(text),
        Kind::List(_) => Value::Array(
            words
                .iter()
                .flat_map(|w| w.text.split(','))
                .filter(|s| !s.is_empty())
                .collect::<Array>(),
        ),
        Kind::Int => Value::from(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad(format!("\"{text}\" is not a whole number")))?,
        ),
        // As typed: `200` stays an integer (a float key takes one), `0.8` a float.
        Kind::Float => match (text.parse::<i64>(), text.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(x)) => Value::from(x),
            _ => return Err(bad(format!("\"{text}\" is not a number"))),
        },
        Kind::Bool => Value::from(match text {
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
            Value::from(text)
        }
        Kind::SizeOr(word) if text == word => Value::from(text),
        Kind::Size | Kind::SizeOr(_) => {
            crate::config::parse_bytes(text).map_err(bad)?;
            match text.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(text),
            }
        }
        Kind::Span => {
            crate::config::parse_span(text).map_err(bad)?;
            Value::from(text)
        }
        Kind::Map(_, value) => {
            let Some(second) = words.get(1) else {
                return Err(Failure::end(format!("a value is missing: <{value}>")));
            };
            let mut pair = InlineTable::new();
            pair.insert(text, Value::from(second.text.as_str()));
            Value::InlineTable(pair)
        }
        Kind::Table(_) | Kind::Entries { .. } => {
            return Err(Failure::plain("internal: a section has no value"));
        }
    })
}

/// `set`: creates sections and entries on the way; a map takes one pair more.
pub fn set(doc: &mut DocumentMut, target: &Target, value: Option<Value>) -> Result<(), Failure> {
    let Some(key) = target.key else {
        if let Some(Step { key, id: None }) = target.steps.last()
            && let Kind::Entries { placeholder, .. } = key.kind
        {
            return Err(Failure::end(format!(
                "name the entry: {} <{placeholder}>",
                spoken(&target.steps)
            )));
        }
        holder(doc, &target.steps, true)
            .ok_or_else(|| Failure::plain("internal: no place for the section"))?;
        // A section named on its own is written even while empty.
        if let Some((last, parents)) = target.steps.split_last()
            && let Some(table) = holder(doc, parents, false)
                .and_then(|p| p.get_mut(last.key.name))
                .and_then(Item::as_table_mut)
        {
            table.set_implicit(false);
        }
        return Ok(());
    };
    let value = value.ok_or_else(|| Failure::end("a value is missing"))?;
    let place = holder(doc, &target.steps, true).ok_or_else(|| {
        Failure::plain(format!(
            "{} is written in a way the console cannot edit; use import",
            spoken(&target.steps)
        ))
    })?;
    put(place, key, value);
    Ok(())
}

/// Puts `value` at `key`, keeping the comment and spacing around an existing value.
fn put(place: &mut dyn TableLike, key: &Key, value: Value) {
    if let (Kind::Map(..), Value::InlineTable(pairs)) = (key.kind, &value)
        && let Some(map) = place.get_mut(key.name).and_then(Item::as_table_like_mut)
    {
        for (name, v) in pairs.iter() {
            map.insert(name, Item::Value(v.clone()));
        }
        return;
    }
    match place.get_mut(key.name).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        None => {
            place.insert(key.name, Item::Value(value));
        }
    }
}

/// `delete`: a key goes back to its default; a section or entry is removed whole.
pub fn delete(doc: &mut DocumentMut, target: &Target) -> Result<(), Failure> {
    let missing = || Failure::end("that is not set in the candidate configuration");
    let Some((last, parents)) = target.steps.split_last() else {
        let key = target.key.ok_or_else(missing)?;
        doc.as_table_mut().remove(key.name).ok_or_else(missing)?;
        return Ok(());
    };
    if let Some(key) = target.key {
        if let Kind::Entries { id: id_key, .. } = last.key.kind
            && key.name == id_key
        {
            return Err(Failure::end(format!(
                "delete the whole entry instead: delete {}",
                spoken(&target.steps)
            )));
        }
        let place = holder(doc, &target.steps, false).ok_or_else(missing)?;
        place.remove(key.name).ok_or_else(missing)?;
        return Ok(());
    }
    let parent = holder(doc, parents, false).ok_or_else(missing)?;
    let (Some(id), Kind::Entries { id: id_key, .. }) = (&last.id, last.key.kind) else {
        parent.remove(last.key.name).ok_or_else(missing)?;
        return Ok(());
    };
    let ids = entry_ids(Some(&*parent), last.key);
    let list = parent
        .get_mut(last.key.name)
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(missing)?;
    let before = list.len();
    list.retain(|t| t.get(id_key).and_then(Item::as_str) != Some(id.as_str()));
    if list.len() == before {
        return Err(missing().choices(ids));
    }
    if list.is_empty() {
        parent.remove(last.key.name);
    }
    Ok(())
}

/// The identifiers of the entries of `[[key]]` in `place` (for completion and errors).
pub fn entry_ids(place: Option<&dyn TableLike>, key: &Key) -> Vec<String> {
    let Kind::Entries { id, .. } = key.kind else {
        return Vec::new();
    };
    place
        .and_then(|p| p.get(key.name))
        .and_then(Item::as_array_of_tables)
        .map(|list| {
            list.iter()
                .filter_map(|t| t.get(id).and_then(Item::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The section `key` inside `place`, if the document has it as a table.
pub fn section<'t>(place: Option<&'t dyn TableLike>, key: &Key) -> Option<&'t dyn TableLike> {
    place?.get(key.name)?.as_table_like()
}

/// The entry `id` of `[[key]]` inside `place`.
pub fn entry<'t>(
    place: Option<&'t dyn TableLike>,
    key: &Key,
    id: &str,
) -> Option<&'t dyn TableLike> {
    let Kind::Entries { id: id_key, .. } = key.kind else {
        return None;
    };
    place?
        .get(key.name)?
        .as_array_of_tables()?
        .iter()
        .find(|t| t.get(id_key).and_then(Item::as_str) == Some(id))
        .map(|t| t as &dyn TableLike)
}

/// Entries as validation names them (`auth.dkim[1]`) and as the console types them
/// (`auth dkim edge2026e`), for every `[[section]]` in the document.
pub fn entry_names(doc: &DocumentMut) -> Vec<(String, String)> {
    let mut out = Vec::new();
    names_in(doc.as_table(), schema::root(), "", "", &mut out);
    out
}

fn names_in(
    place: &dyn TableLike,
    keys: &'static [Key],
    dotted: &str,
    spoken: &str,
    out: &mut Vec<(String, String)>,
) {
    let join = |a: &str, sep: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}{sep}{b}")
        }
    };
    for key in keys {
        match key.kind {
            Kind::Table(inner) => {
                if let Some(t) = section(Some(place), key) {
                    let d = join(dotted, ".", key.name);
                    names_in(t, inner, &d, &join(spoken, " ", key.name), out);
                }
            }
            Kind::Entries {
                id, keys: inner, ..
            } => {
                let Some(list) = place.get(key.name).and_then(Item::as_array_of_tables) else {
                    continue;
                };
                for (i, t) in list.iter().enumerate() {
                    let Some(name) = t.get(id).and_then(Item::as_str) else {
                        continue;
                    };
                    let d = format!("{}[{i}]", join(dotted, ".", key.name));
                    let s = join(&join(spoken, " ", key.name), " ", name);
                    names_in(t, inner, &d, &s, out);
                    out.push((d, s));
                }
            }
            _ => {}
        }
    }
}

/// The table holding the keys at `steps`, created on the way when `create`.
fn holder<'t>(
    doc: &'t mut DocumentMut,
    steps: &[Step],
    create: bool,
) -> Option<&'t mut dyn TableLike> {
    let mut place: &'t mut dyn TableLike = doc.as_table_mut();
    for step in steps {
        place = match step.key.kind {
            Kind::Table(_) => child(place, step.key.name, create)?,
            Kind::Entries { id: id_key, .. } => {
                entry_mut(place, step.key.name, id_key, step.id.as_deref()?, create)?
            }
            _ => return None,
        };
    }
    Some(place)
}

fn child<'t>(
    place: &'t mut dyn TableLike,
    name: &str,
    create: bool,
) -> Option<&'t mut dyn TableLike> {
    if !place.get(name).is_some_and(Item::is_table_like) {
        if !create {
            return None;
        }
        // Implicit: a section made only to hold another (`[routing.callout]`) gets no
        // empty header of its own; it gets one as soon as it holds a key.
        let mut table = Table::new();
        table.set_implicit(true);
        place.insert(name, Item::Table(table));
    }
    place.get_mut(name)?.as_table_like_mut()
}

fn entry_mut<'t>(
    place: &'t mut dyn TableLike,
    name: &str,
    id_key: &str,
    id: &str,
    create: bool,
) -> Option<&'t mut dyn TableLike> {
    if !place.get(name).is_some_and(Item::is_array_of_tables) {
        // An empty array written inline (`domain = []`) becomes `[[domain]]` entries;
        // anything else is left alone.
        let empty = place
            .get(name)
            .and_then(Item::as_array)
            .is_none_or(Array::is_empty);
        if !create || !empty {
            return None;
        }
        place.insert(name, Item::ArrayOfTables(Default::default()));
    }
    let list = place.get_mut(name)?.as_array_of_tables_mut()?;
    let found = list
        .iter()
        .position(|t| t.get(id_key).and_then(Item::as_str) == Some(id));
    let pos = match found {
        Some(p) => p,
        None if create => {
            let mut entry = Table::new();
            entry.insert(id_key, toml_edit::value(id));
            list.push(entry);
            list.len() - 1
        }
        None => return None,
    };
    list.get_mut(pos).map(|t| t as &mut dyn TableLike)
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

    /// `set LINE`; word numbers in errors count `set` as word 0.
    fn apply(doc: &mut DocumentMut, line: &str) -> Result<(), Failure> {
        set_words(doc, &split(&format!("set {line}"))[1..])
    }

    #[test]
    fn paths_create_entries_and_typed_values() {
        let mut t = DocumentMut::new();
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
        assert_eq!(e.word, Some(4));
        assert!(e.choices.contains(&"required".to_string()));
        let e = apply(&mut t, "limits max_recipients many").unwrap_err();
        assert_eq!(e.word, Some(3));
        let e = apply(&mut t, "limits max_recipents 5").unwrap_err();
        assert_eq!(e.word, Some(2));
        assert_eq!(e.message, "\"max_recipents\" is not a key of [limits]");
        delete_words(&mut t, &split("domain example.com")).unwrap();
        assert!(!render(&t).contains("example.com"));
    }

    #[test]
    fn nested_sections_entries_and_maps_are_paths() {
        let mut t = DocumentMut::new();
        apply(&mut t, "routing callout timeout 5s").unwrap();
        apply(&mut t, "routing masquerade *.corp.example.com example.com").unwrap();
        apply(&mut t, "routing masquerade old.example.com example.com").unwrap();
        apply(&mut t, "auth dkim edge2026r domain example.com").unwrap();
        apply(&mut t, "route onprem next_hops 10.0.0.1:25").unwrap();
        let text = render(&t);
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["routing"]["callout"]["timeout"].as_str(), Some("5s"));
        let masquerade = parsed["routing"]["masquerade"].as_table().unwrap();
        assert_eq!(masquerade.len(), 2, "{text}");
        assert_eq!(
            masquerade["*.corp.example.com"].as_str(),
            Some("example.com")
        );
        let dkim = &parsed["auth"]["dkim"][0];
        assert_eq!(dkim["selector"].as_str(), Some("edge2026r"), "{text}");
        assert_eq!(dkim["domain"].as_str(), Some("example.com"), "{text}");
        assert!(
            !text.contains("[auth]"),
            "an empty header was written: {text}"
        );
        let e = delete_words(&mut t, &split("auth dkim edge2026r selector")).unwrap_err();
        assert_eq!(
            e.message,
            "delete the whole entry instead: delete auth dkim edge2026r"
        );
        let names = entry_names(&t);
        assert!(names.contains(&("auth.dkim[0]".into(), "auth dkim edge2026r".into())));
        assert!(names.contains(&("route[0]".into(), "route onprem".into())));
    }

    #[test]
    fn comments_and_order_survive_an_edit() {
        let running = "# edge of the office network\nhostname = \"mx.test\" # as in MX\n\n\
                       [limits]\n# tuned for the old backend\nmax_recipients = 20 # keep low\n\
                       max_errors = 3\n";
        let mut t = document(running).unwrap();
        apply(&mut t, "limits max_recipients 50").unwrap();
        apply(&mut t, "queue max_batch 64").unwrap();
        let text = render(&t);
        assert!(
            text.starts_with(
                "# edge of the office network\nhostname = \"mx.test\" # as in MX\n\n\
                 [limits]\n# tuned for the old backend\nmax_recipients = 50 # keep low\n\
                 max_errors = 3\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("[queue]\nmax_batch = 64\n"), "{text}");
        assert_eq!(
            diff(running, &text),
            "  [limits]\n  # tuned for the old backend\n- max_recipients = 20 # keep low\n\
             + max_recipients = 50 # keep low\n  max_errors = 3\n+ \n+ [queue]\n+ max_batch = 64\n"
        );
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let d = diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n");
        assert_eq!(d, "  b\n  c\n- d\n+ D\n  e\n  f\n");
    }
}
