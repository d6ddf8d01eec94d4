//! The library's dependencies point one way: `cli` on top, the products
//! (`ftpwho`, `upload`, and `metrics` where present) beside each other, `os`
//! at the bottom; and inside every module, its children do not depend on
//! each other in a circle. Read from the source: every `crate::`, `super::`
//! and `self::` path of every file under `src/lib`. And `unsafe` is written
//! only in `os`, the plumbing: nowhere else under `src`.

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

/// The lines (1-based) on which the keyword `unsafe` is used in the Rust
/// source `text`: comments, string, byte-string and character literals
/// left out, and identifiers that merely contain it (`unsafe_code`).
fn unsafe_lines(text: &str) -> Vec<usize> {
    let chars: Vec<char> = text.chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Advances over chars[from..to], counting lines.
    let skip = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
        to.min(chars.len())
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && is_ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            let end = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
            i = skip(i, end, &mut line);
        } else if c == '/' && next == Some('*') {
            // Block comments nest.
            let (mut depth, mut j) = (1, i + 2);
            while j < chars.len() && depth > 0 {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            i = skip(i, j, &mut line);
        } else if !after_ident && (c == 'r' || (c == 'b' && next == Some('r'))) && {
            let k = if c == 'r' { i + 1 } else { i + 2 };
            let hashes = chars[k..].iter().take_while(|&&h| h == '#').count();
            chars.get(k + hashes) == Some(&'"')
        } {
            // A raw string: r"..", r#".."#, br"..".
            let k = if c == 'r' { i + 1 } else { i + 2 };
            let hashes = chars[k..].iter().take_while(|&&h| h == '#').count();
            let mut j = k + hashes + 1;
            while j < chars.len() {
                if chars[j] == '"'
                    && chars[j + 1..].iter().take_while(|&&h| h == '#').count() >= hashes
                {
                    break;
                }
                j += 1;
            }
            i = skip(i, j + 1 + hashes, &mut line);
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = skip(i, j + 1, &mut line);
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime.
            if next == Some('\\') {
                let end = (i + 2..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .unwrap_or(chars.len());
                i = end + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if is_ident(c) && !after_ident {
            let end = (i..chars.len())
                .find(|&j| !is_ident(chars[j]))
                .unwrap_or(chars.len());
            if chars[i..end].iter().collect::<String>() == "unsafe" {
                found.push(line);
            }
            i = end;
        } else {
            if c == '\n' {
                line += 1;
            }
            i += 1;
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn unsafe_is_written_only_in_os() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let os = lib_dir().join("os");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10, "no sources found");
    let mut outside = Vec::new();
    let mut inside = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        let lines = unsafe_lines(&text);
        if file.starts_with(&os) {
            inside += lines.len();
            continue;
        }
        for line in lines {
            let shown = file.strip_prefix(root).unwrap_or(&file).display();
            outside.push(format!("{shown}:{line}"));
        }
    }
    assert!(inside > 0, "the scan finds no unsafe at all, even in os");
    assert!(
        outside.is_empty(),
        "unsafe outside src/lib/os (move it into a safe wrapper there):\n{}",
        outside.join("\n")
    );
}

#[test]
fn the_unsafe_scanner_sees_keywords_not_comments_or_strings() {
    let text = "fn refuses_unsafe_files() {}\n\
                // unsafe { in a comment }\n\
                /* unsafe /* nested */ unsafe */\n\
                let s = \"unsafe {\"; let r = r#\"unsafe \"# ;\n\
                #![deny(unsafe_code)] let c = '\"'; let l: &'a str = x;\n\
                let v = unsafe { f() };\n\
                unsafe fn g() {}\n\
                let t = b\"\\\"unsafe\"; unsafe impl Send for X {}\n";
    assert_eq!(unsafe_lines(text), vec![6, 7, 8]);
}
