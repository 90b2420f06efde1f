//! The runtime's top-level modules form no cycle: no module of `src/` imports one that
//! imports it back, directly or through others. (Cycles make a connector impossible to read
//! on its own and to copy: `pipeline` and `source` needed each other before `BatchStream`
//! moved to `batch` and `RetryPolicy` to the leaf `retry`.)
//!
//! A module's imports are the `crate::<module>` paths in its code (comments and doc links do
//! not count; `use crate::{a, b}` counts both). `lib.rs` (the façade that re-exports
//! everything) and `__private` (`macro_support.rs`, what `pipeline!`'s expansion calls) sit
//! above the graph and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file of a top-level module: `src/<name>.rs` or everything under `src/<name>/`.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read src/") {
        let path = entry.expect("entry of src/").path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            collect_rs(&path, &mut files);
            out.insert(name, files);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "macro_support" {
            out.insert(name, vec![path]);
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a module directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments, doc comments, block comments) and
/// string literals, which may mention `crate::` without importing anything.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            // A character literal holding a quote is not the start of a string.
            b'\'' if bytes.get(i + 1) == Some(&b'"') && bytes.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 2) == Some(&b'"') => i += 4,
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules a piece of code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b}`: the first segment of each item.
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut graph = BTreeMap::new();
    for (name, files) in &mods {
        let mut deps = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).expect("read a source file");
            deps.extend(imports(&code_only(&text)).into_iter().filter(|d| d != name && mods.contains_key(d)));
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A path `from → … → to` in the graph, if any (breadth first, so the shortest).
fn path(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for next in graph.get(at).into_iter().flatten() {
            if next == to {
                let mut path = vec![to.to_owned(), at.to_owned()];
                let mut cur = at;
                while let Some(prev) = came_from.get(cur) {
                    path.push((*prev).to_owned());
                    cur = prev;
                }
                path.reverse();
                return Some(path);
            }
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let graph = graph();
    assert!(graph.contains_key("pipeline") && graph.contains_key("batch"), "src/ was not found");
    let mut cycles = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            if let Some(back) = path(&graph, dep, module) {
                cycles.push(format!("{module} → {}", back.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles in src/ (a module imports one that imports it back):\n  {}", cycles.join("\n  "));
}

#[test]
fn the_scanner_sees_imports_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{batch::Batch, ack};\n/// [`X`](crate::pipeline::X)\n// crate::sink\n/* crate::stage */\nlet s = \"crate::source\";\nlet r = crate::retry::count_retry();",
    );
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["ack", "batch", "retry"]);
    let g = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(path(&g, "b", "a"), Some(vec!["b".to_owned(), "c".to_owned(), "a".to_owned()]));
    assert_eq!(path(&g, "a", "d"), None);
}
