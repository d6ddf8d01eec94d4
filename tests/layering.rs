//! The library's dependencies point one way: `cli` on top, the products
//! (`ftpwho`, `upload`, and `metrics` where present) beside each other, `os`
//! at the bottom; and inside every module, its children do not depend on
//! each other in a circle. Read from the source: every `crate::`, `super::`
//! and `self::` path of every file under `src/lib`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level module may use which.
const ALLOWED: &[(&str, &[&str])] = &[
    ("os", &[]),
    ("ftpwho", &["os"]),
    ("upload", &["os"]),
    ("metrics", &["ftpwho", "upload", "os"]),
    ("cli", &["ftpwho", "upload", "metrics", "os"]),
];

/// A module path such as `["ftpwho", "scoreboard", "scan"]`.
type Module = Vec<String>;

fn lib_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib")
}

/// Every `.rs` file under `src/lib` with the module it defines.
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, String>) {
        for entry in std::fs::read_dir(dir).expect("read src/lib") {
            let path = entry.expect("entry").path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                let mut child = prefix.clone();
                child.push(name);
                walk(&path, &child, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = prefix.clone();
                if name != "mod" && name != "lib" {
                    module.push(name);
                }
                let text = std::fs::read_to_string(&path).expect("read source");
                out.entry(module).or_default().push_str(&text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&lib_dir(), &Vec::new(), &mut out);
    out
}

/// The module paths a source text names, resolved from `module`
/// (`super::` inside a nested `mod tests` resolves one level too high,
/// to an ancestor, which no check counts).
fn references(module: &Module, text: &str) -> Vec<Module> {
    let mut found = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let base: Module = match start {
                "crate::" => Vec::new(),
                "self::" => module.clone(),
                _ => {
                    // Count `super::` repetitions.
                    let mut base = module.clone();
                    base.pop();
                    let mut rest = &code[from..];
                    while let Some(r) = rest.strip_prefix("super::") {
                        base.pop();
                        rest = r;
                        from += "super::".len();
                    }
                    base
                }
            };
            for path in expand(&code[from..]) {
                let mut full = base.clone();
                full.extend(path);
                found.push(full);
            }
        }
    }
    found
}

/// The identifier paths at the start of `rest`: `a::b::C` or
/// `a::{b, c::d}` (one level of braces).
fn expand(rest: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut prefix = Vec::new();
    let mut rest = rest;
    loop {
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            return inner[..end]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    let mut path = prefix.clone();
                    for part in item.split("::") {
                        let n = ident(part);
                        if n == 0 {
                            break;
                        }
                        path.push(part[..n].to_string());
                    }
                    path
                })
                .collect();
        }
        let n = ident(rest);
        if n == 0 {
            return vec![prefix];
        }
        prefix.push(rest[..n].to_string());
        rest = &rest[n..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![prefix],
        }
    }
}

/// The dependency edges between the modules, each reference cut to the
/// deepest module that exists.
fn edges() -> BTreeSet<(Module, Module)> {
    let modules = modules();
    let mut edges = BTreeSet::new();
    for (module, text) in &modules {
        for mut target in references(module, text) {
            while !target.is_empty() && !modules.contains_key(&target) {
                target.pop();
            }
            if !target.is_empty() && &target != module {
                edges.insert((module.clone(), target));
            }
        }
    }
    edges
}

#[test]
fn top_level_modules_depend_only_downwards() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, to) in edges() {
        let (a, b) = (from[0].as_str(), to[0].as_str());
        if a == b {
            continue;
        }
        let ok = allowed.get(a).is_some_and(|list| list.contains(&b));
        if !ok {
            wrong.push(format!("{} uses {}", from.join("::"), to.join("::")));
        }
    }
    let known: BTreeSet<&str> = allowed.keys().copied().collect();
    for module in modules().keys() {
        if let Some(top) = module.first() {
            assert!(
                known.contains(top.as_str()),
                "src/lib/{top} is not in ALLOWED"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "upward dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn sibling_modules_have_no_cycle() {
    let edges = edges();
    // Edges between siblings: the children of one parent, each standing
    // for its whole subtree.
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, to) in &edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common >= from.len() || common >= to.len() {
            continue; // a module and its own ancestor or descendant
        }
        graph
            .entry(from[..=common].to_vec())
            .or_default()
            .insert(to[..=common].to_vec());
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, bool>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        match state.get(node) {
            Some(true) => {
                let at = stack.iter().position(|m| m == node).unwrap();
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(node.clone(), true);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node.clone(), false);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_cycles_and_upward_uses() {
    // The parser itself, on made-up sources.
    let module: Module = vec!["ftpwho".into(), "scoreboard".into(), "scan".into()];
    let refs = references(
        &module,
        "use crate::os::{fs, systemd::notify};\nuse super::file::read_one;\n// use crate::cli;\n",
    );
    let names: BTreeSet<String> = refs.iter().map(|m| m.join("::")).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "os::fs".to_string(),
            "os::systemd::notify".to_string(),
            "ftpwho::scoreboard::file::read_one".to_string(),
        ])
    );
    // And the real graph has edges at all.
    assert!(edges()
        .iter()
        .any(|(a, b)| a[0] == "cli" && b[0] == "ftpwho"));
}
