//! Every key the documentation shows can be set from the console with its documented
//! value, `show candidate` shows it, and the candidate commits.
//!
//! Each TOML block of README.md and docs/*.md (`edgemx_tests::docs`) is taken apart into
//! console lines — `set hostname mx1.example.net`, `set routing callout timeout 15s`,
//! `set domain example.com next_hops 10.1.2.3:25`, `set routing masquerade NAME VALUE` —
//! and typed into the console's editor (`edgemx::console::Editor`: its grammar check, its
//! typing of values, its edit of the candidate document), starting from what the block is
//! checked after in `readme_config.rs` (nothing for a whole file). Then every documented
//! value must be in the candidate as `show candidate` prints it, with the same TOML type,
//! and the candidate must pass `edgemx check-config`, which validates as `commit check`
//! does.

use edgemx::console::Editor;
use edgemx_tests::docs::{Block, before, blocks, check_config, documents, install_files};
use toml::{Table, Value};

/// `[[section]]` entries are named in a path by the value of one of their keys.
const ENTRY_IDS: &[(&str, &str)] = &[
    ("listener", "address"),
    ("domain", "name"),
    ("route", "name"),
    ("auth.dkim", "selector"),
    ("admin.probe", "recipient"),
    ("log.syslog", "address"),
];

/// Tables of names to values.
const MAPS: &[&str] = &["routing.masquerade", "route.rewrite"];

/// Documented keys the console does not `set`, and why; the test fails if one of these
/// becomes a plain value or stops being documented, so the list stays true.
const NOT_SET: &[(&str, &str)] = &[(
    "domain.tls",
    "a TLS policy written as a table (pins, CA, client certificate) is entered with `import`; \
     its string form is a `set`",
)];

#[test]
fn every_documented_key_can_be_set_shown_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install_files(root);
    let blocks: Vec<Block> = documents().iter().flat_map(|f| blocks(f)).collect();
    let mut failed: Vec<String> = Vec::new();
    let (mut typed, mut skipped) = (0, Vec::new());
    for (n, block) in blocks.iter().enumerate() {
        let documented: Table = block.text.parse().unwrap();
        let mut keys = Vec::new();
        flatten(&documented, &[], "", &mut keys);
        let mut editor = Editor::new(&before(block)).unwrap();
        for key in &keys {
            match &key.line {
                Ok(line) => {
                    typed += 1;
                    if let Err(e) = editor.run(line) {
                        failed.push(format!("{}: {line}\n{e}", block.place));
                    }
                }
                Err(why) => skipped.push(format!("{}: {} ({why})", block.place, key.toml)),
            }
        }
        let shown: Table = match editor.candidate().parse() {
            Ok(t) => t,
            Err(e) => {
                failed.push(format!("{}: the candidate is not TOML: {e}", block.place));
                continue;
            }
        };
        for key in keys.iter().filter(|k| k.line.is_ok()) {
            let found = lookup(&shown, &key.path);
            if found != Some(&key.value) {
                failed.push(format!(
                    "{}: {} = {} documented, the candidate shows {found:?}",
                    block.place, key.toml, key.value
                ));
            }
        }
        let out = check_config(root, &format!("candidate-{n}.toml"), &editor.candidate());
        if !out.status.success() {
            failed.push(format!(
                "{}: the candidate does not commit:\n{}{}\n{}",
                block.place,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                editor.candidate()
            ));
        }
    }
    println!(
        "{typed} documented keys set; left to import:\n{}",
        skipped.join("\n")
    );
    assert!(
        typed > 100,
        "too few keys found in the documentation: {typed}"
    );
    for (name, _) in NOT_SET {
        assert!(
            skipped.iter().any(|s| s.contains(&format!(" {name} ("))),
            "{name} is listed as not settable but no block documents it as a table"
        );
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// One documented key: its TOML name, the console line that sets it (or why there is
/// none), where its value sits in a parsed candidate, and the value.
struct Documented {
    toml: String,
    line: Result<String, &'static str>,
    path: Vec<Step>,
    value: Value,
}

#[derive(Clone)]
enum Step {
    Key(String),
    /// The entry of an array of tables whose `id` key has this value.
    Entry(String, String, String),
}

fn flatten(table: &Table, path: &[Step], words: &str, out: &mut Vec<Documented>) {
    let dotted = dotted(path);
    let entry_id = entry_id(path);
    for (name, value) in table {
        let mut here = path.to_vec();
        let toml = join(&dotted, '.', name);
        let spoken = join(words, ' ', name);
        match value {
            Value::Table(inner) if NOT_SET.iter().any(|(n, _)| *n == toml) => {
                let why = NOT_SET.iter().find(|(n, _)| *n == toml).map(|(_, w)| *w);
                out.push(Documented {
                    toml,
                    line: Err(why.unwrap_or_default()),
                    path: here,
                    value: Value::Table(inner.clone()),
                });
            }
            Value::Table(inner) if section(&toml) => {
                here.push(Step::Key(name.clone()));
                flatten(inner, &here, &spoken, out);
            }
            // A map: one `set … NAME VALUE` per pair.
            Value::Table(inner) => {
                for (k, v) in inner {
                    let mut at = here.clone();
                    at.push(Step::Key(name.clone()));
                    at.push(Step::Key(k.clone()));
                    out.push(Documented {
                        toml: format!("{toml}.{k}"),
                        line: Ok(format!("set {spoken} {} {}", word(k), words_of(v))),
                        path: at,
                        value: v.clone(),
                    });
                }
            }
            Value::Array(list) if list.iter().all(Value::is_table) && !list.is_empty() => {
                let id = ENTRY_IDS
                    .iter()
                    .find(|(s, _)| *s == toml)
                    .map(|(_, id)| *id)
                    .unwrap_or_else(|| panic!("[[{toml}]]: which key names an entry?"));
                for entry in list {
                    let entry = entry.as_table().unwrap();
                    let name_value = entry[id].as_str().unwrap().to_string();
                    let mut at = here.clone();
                    at.push(Step::Entry(
                        name.clone(),
                        id.to_string(),
                        name_value.clone(),
                    ));
                    let words = format!("{spoken} {}", word(&name_value));
                    flatten(entry, &at, &words, out);
                }
            }
            _ if Some(name.as_str()) == entry_id.as_deref() => {
                // The entry's name is part of its path; it must be shown all the same.
                here.push(Step::Key(name.clone()));
                out.push(Documented {
                    toml,
                    line: Ok(format!("set {words}")),
                    path: here,
                    value: value.clone(),
                });
            }
            _ => {
                here.push(Step::Key(name.clone()));
                out.push(Documented {
                    toml,
                    line: Ok(format!("set {spoken} {}", words_of(value))),
                    path: here,
                    value: value.clone(),
                });
            }
        }
    }
}

/// A table that is a section of the file rather than a map of names to values (which
/// the console sets one pair at a time).
fn section(dotted: &str) -> bool {
    !MAPS.contains(&dotted)
}

fn dotted(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) | Step::Entry(k, _, _) => k.as_str(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The key that names the entry `path` ends in, if it ends in one.
fn entry_id(path: &[Step]) -> Option<String> {
    match path.last() {
        Some(Step::Entry(_, id, _)) => Some(id.clone()),
        _ => None,
    }
}

fn join(a: &str, sep: char, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}{sep}{b}")
    }
}

fn lookup<'t>(table: &'t Table, path: &[Step]) -> Option<&'t Value> {
    let (first, rest) = path.split_first()?;
    let value = match first {
        Step::Key(k) => table.get(k)?,
        Step::Entry(k, id, name) => table
            .get(k)?
            .as_array()?
            .iter()
            .find(|e| e.get(id).and_then(Value::as_str) == Some(name))?,
    };
    match rest {
        [] => Some(value),
        _ => lookup(value.as_table()?, rest),
    }
}

/// A value as typed after the key: list items as words, blanks quoted.
fn words_of(value: &Value) -> String {
    match value {
        Value::String(s) => word(s),
        Value::Array(items) => items.iter().map(words_of).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

fn word(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}
