//! The module graph of `eventeum-core` is a DAG in the layers that
//! `src/lib.rs` lists: a module imports only from its own layer or below,
//! never round a cycle; and the files of one directory module import each
//! other one way. Read from the source (`crate::…` and `super::…` paths
//! outside comments and test modules), so a new upward import fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first, as `src/lib.rs` documents them.
const LAYERS: &[&[&str]] = &[
    &[
        "limits",
        "states",
        "error",
        "redact",
        "netpolicy",
        "discard",
        "wake",
    ],
    &["event", "node", "broadcast", "message", "compact"],
    &["view", "kind"],
    &["spec"],
    &["monitor", "matcher", "decode"],
    &["config"],
    &["rows"],
    &["protocol"],
    &["rpc"],
    &["follow", "relay", "metrics"],
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]`
/// module (tests may reach anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow each occurrence of `prefix` in `code`,
/// including each name of a `prefix{a, b::c}` group.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `my_crate::` is not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = identifier(item.trim());
                if !name.is_empty() && name != "self" {
                    names.push(name);
                }
            }
        } else {
            let name = identifier(rest);
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level module graph, and per directory module the graph of its
/// files (`mod.rs`, which only declares and re-exports, left out).
fn graphs() -> (Graph, BTreeMap<String, Graph>) {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut modules = Graph::new();
    let mut directories: BTreeMap<String, Graph> = BTreeMap::new();
    for path in files {
        let relative = path.strip_prefix(&root).unwrap();
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts == ["lib"] {
            continue;
        }
        let top = parts[0].clone();
        let code = code(&fs::read_to_string(&path).unwrap());
        let imports = paths_after(&code, "crate::");
        let entry = modules.entry(top.clone()).or_default();
        for module in &imports {
            if *module != top {
                entry.insert(module.clone());
            }
        }
        // A file of a directory module: its imports of sibling files.
        if parts.len() == 2 && parts[1] != "mod" {
            let file = parts[1].clone();
            let siblings: BTreeSet<String> = fs::read_dir(root.join(&top))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter_map(|p| Some(p.file_stem()?.to_string_lossy().to_string()))
                .filter(|s| s != "mod")
                .collect();
            let nested = format!("crate::{top}::");
            let used: BTreeSet<String> = paths_after(&code, "super::")
                .into_iter()
                .chain(paths_after(&code, &nested))
                .filter(|s| siblings.contains(s) && *s != file)
                .collect();
            directories
                .entry(top.clone())
                .or_default()
                .entry(file)
                .or_default()
                .extend(used);
        }
    }
    (modules, directories)
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| {
            panic!("module `{module}` is in no layer: add it to LAYERS and to src/lib.rs")
        })
}

/// Every edge that goes up a layer, as `from -> to`.
fn upward_imports(graph: &Graph) -> Vec<String> {
    graph
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer_of(to) > layer_of(from))
        .map(|(from, to)| {
            format!(
                "{from} (layer {}) -> {to} (layer {})",
                layer_of(from),
                layer_of(to)
            )
        })
        .collect()
}

/// A cycle of the graph, if it has one, as the path round it.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut round = path[at..].to_vec();
            round.push(node.to_string());
            return Some(round);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(round) = visit(next, graph, done, path) {
                return Some(round);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn every_module_is_in_a_layer_and_imports_only_down_or_across() {
    let (modules, _) = graphs();
    for module in modules.keys() {
        layer_of(module);
    }
    let upward = upward_imports(&modules);
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let (modules, _) = graphs();
    if let Some(round) = cycle(&modules) {
        panic!("modules import round a cycle: {}", round.join(" -> "));
    }
}

#[test]
fn the_files_of_each_directory_module_import_one_way() {
    let (_, directories) = graphs();
    assert!(directories.contains_key("follow"));
    for (directory, files) in &directories {
        if let Some(round) = cycle(files) {
            panic!(
                "files of {directory}/ import round a cycle: {}",
                round.join(" -> ")
            );
        }
    }
}

#[test]
fn lib_rs_lists_the_same_layers() {
    let lib = fs::read_to_string(source_root().join("lib.rs")).unwrap();
    for (i, layer) in LAYERS.iter().enumerate() {
        let line = format!(
            "//! - L{i}: {}",
            layer
                .iter()
                .map(|m| format!("[`{m}`]"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            lib.contains(&line),
            "src/lib.rs should document layer {i} as:\n{line}"
        );
    }
}

/// The checks above are only worth something if they catch what they are
/// for: an upward import, a cycle between modules, and one between files.
#[test]
fn the_checks_catch_an_upward_import_and_a_cycle() {
    let (mut modules, mut directories) = graphs();
    modules
        .get_mut("states")
        .unwrap()
        .insert("protocol".to_string());
    assert!(
        upward_imports(&modules).contains(&"states (layer 0) -> protocol (layer 7)".to_string())
    );
    modules
        .get_mut("config")
        .unwrap()
        .insert("rows".to_string());
    assert!(cycle(&modules).is_some());
    let follow = directories.get_mut("follow").unwrap();
    follow
        .get_mut("position")
        .unwrap()
        .insert("follower".to_string());
    assert!(cycle(follow).is_some());
}
