//! The gateway's top-level modules depend on each other in one direction only: no cycle
//! between them except through `server` and `cli`, the composition roots (ARCHITECTURE.md,
//! "Dependencies between modules"). `smtp` counts as its three layers (`proto`, `client`,
//! `inbound`), which depend on each other downwards only.
//!
//! Read from the source: every `crate::module` path outside comments and test code.
//! The few cycles still allowed are listed in [`ALLOWED`], each with the reason
//! ARCHITECTURE.md gives; a new one fails this test, and so does an allowed one that is gone
//! (so the list cannot go stale).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules split into their submodules.
const SPLIT: &[&str] = &["smtp"];
/// Composition roots: they may use everything and are left out of the graph.
const ROOTS: &[&str] = &["server", "cli", "lib", "main"];
/// Edges that still close a cycle, with why (ARCHITECTURE.md explains each).
const ALLOWED: &[(&str, &str, &str)] = &[];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                source_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(path);
            }
        }
    }
}

/// The node a file belongs to: `queue`, or `smtp::inbound` for a split module.
fn node_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [top, sub, ..] if SPLIT.contains(&top.as_str()) && sub != "mod" => format!("{top}::{sub}"),
        [top, ..] => top.clone(),
        [] => String::new(),
    }
}

/// node → node → files where the first uses the second.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        modules.insert(stem);
    }
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let from = node_of(relative);
        if ROOTS.contains(&from.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests at the end of a file may use anything.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let path: Vec<&str> = line[at + 7..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .collect();
                let top = path[0];
                if !modules.contains(top) || ROOTS.contains(&top) {
                    continue;
                }
                let to = match path.get(1) {
                    Some(sub) if SPLIT.contains(&top) && !sub.is_empty() => format!("{top}::{sub}"),
                    _ => top.to_string(),
                };
                if to != from {
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default()
                        .insert(relative.display().to_string());
                }
            }
        }
    }
    graph
}

/// Whether `to` reaches `from` in `graph` without the edges in `without`.
fn reaches(graph: &Graph, from: &str, to: &str, without: &BTreeSet<(String, String)>) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![to.to_string()];
    while let Some(node) = stack.pop() {
        if node == from {
            return true;
        }
        if !seen.insert(node.clone()) {
            continue;
        }
        for next in graph.get(&node).into_iter().flat_map(|e| e.keys()) {
            if !without.contains(&(node.clone(), next.clone())) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn top_level_modules_depend_on_each_other_in_one_direction() {
    let graph = graph();
    assert!(
        graph.contains_key("delivery") && graph.contains_key("smtp::inbound"),
        "the source was not read: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let mut cycles = Vec::new();
    for (from, edges) in &graph {
        for (to, files) in edges {
            if allowed.contains(&(from.clone(), to.clone())) {
                continue;
            }
            // An edge closes a cycle when its target leads back to its source.
            if reaches(&graph, from, to, &allowed) {
                cycles.push(format!("{from} -> {to} (in {files:?})"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "module cycles (break them, or list the edge in ALLOWED and explain it in ARCHITECTURE.md):\n{}",
        cycles.join("\n")
    );
    for (from, to, why) in ALLOWED {
        assert!(
            graph.get(*from).is_some_and(|e| e.contains_key(*to)),
            "{from} -> {to} is allowed ({why}) but no longer used: remove it from ALLOWED"
        );
    }
}

#[test]
fn the_reader_finds_a_planted_cycle() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("x.rs".into());
    };
    edge(&mut graph, "queue", "config");
    edge(&mut graph, "delivery", "queue");
    assert!(!reaches(&graph, "delivery", "queue", &BTreeSet::new()));
    edge(&mut graph, "config", "delivery");
    assert!(reaches(&graph, "delivery", "queue", &BTreeSet::new()));
    assert_eq!(node_of(Path::new("smtp/inbound/data.rs")), "smtp::inbound");
    assert_eq!(node_of(Path::new("smtp/mod.rs")), "smtp");
    assert_eq!(node_of(Path::new("queue/store.rs")), "queue");
}
