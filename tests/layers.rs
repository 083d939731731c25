//! The source tree's shape, checked: folders are layers and imports point down.
//!
//! Reads `src/` as text (no build step, no extra crate) and fails with the file and the
//! offending path when a module reaches up a layer, when two modules import each other
//! round a circle, when a file outgrows what one reader holds in mind, when backend
//! knowledge leaks out of `store/`, or when a file lacks its opening `//!` paragraph.
//! Test code (`tests.rs` files, inline `#[cfg(test)] mod … { … }` blocks) and comments are left out:
//! a test may use a lower layer's fixture from anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom up; a module may use its own layer and those before it.
const LAYERS: &[&str] = &[
    "util",
    "store",
    "telemetry",
    "config",
    "auth",
    "policy",
    "lifecycle",
    "gate",
    "endpoints",
    "edge",
    "ops",
    "demo",
    "cli",
];

/// Longest source file, counting lines before its test module.
const MAX_LINES: usize = 500;

struct SourceFile {
    /// Path below `src/`, with `/` separators.
    path: String,
    /// The module path, e.g. `["lifecycle", "grants", "expiry"]` (`mod.rs` is its folder).
    module: Vec<String>,
    /// Code lines before the test module, comments removed.
    code: Vec<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_string)
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let mut code = Vec::new();
            let mut lines = text.lines().peekable();
            while let Some(line) = lines.next() {
                if line.trim() == "#[cfg(test)]"
                    && lines
                        .peek()
                        .is_some_and(|l| l.starts_with("mod ") && l.trim_end().ends_with('{'))
                {
                    break;
                }
                let without_comment = line.split("//").next().unwrap_or("");
                code.push(without_comment.to_string());
            }
            SourceFile {
                path: rel,
                module,
                code,
                text,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(f: &SourceFile) -> bool {
    f.path.ends_with("/tests.rs") || f.path == "util/attacker_input.rs"
}

/// Every `crate::a::b` path a line of code names, as its first two segments.
fn crate_paths(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `jitgate_crate::`
        }
        let segments: Vec<String> = rest
            .split("::")
            .map(|s| {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_lowercase() || c == '_' || c.is_ascii_digit())
            })
            .take(2)
            .collect();
        if !segments.is_empty() {
            found.push(segments);
        }
    }
    found
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == top)
}

#[test]
fn every_import_points_to_the_same_or_a_lower_layer() {
    let mut upward = Vec::new();
    let mut unknown = Vec::new();
    for f in source_files().iter().filter(|f| !is_test_file(f)) {
        let Some(top) = f.module.first() else {
            continue;
        };
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer_of(top) else {
            unknown.push(f.path.clone());
            continue;
        };
        for (n, line) in f.code.iter().enumerate() {
            for target in crate_paths(line) {
                match layer_of(&target[0]) {
                    Some(l) if l <= own => {}
                    Some(_) => upward.push(format!(
                        "src/{}:{}: {} uses crate::{}",
                        f.path,
                        n + 1,
                        top,
                        target.join("::")
                    )),
                    None => unknown.push(format!("src/{}:{}: crate::{}", f.path, n + 1, target[0])),
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules outside the layer list: {unknown:#?}"
    );
    assert!(
        upward.is_empty(),
        "imports that point up a layer: {upward:#?}"
    );
}

#[test]
fn modules_import_each_other_in_no_circle() {
    // Modules two levels deep (`lifecycle::grants`, `endpoints::login`): a circle among
    // siblings is as confusing as one between layers.
    let files = source_files();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| !is_test_file(f)) {
        let from = f
            .module
            .iter()
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join("::");
        if from == "lib" || from == "main" {
            continue;
        }
        for line in &f.code {
            for target in crate_paths(line) {
                let mut to = target.clone();
                // `crate::x::Type` names the module `x`.
                if to.len() == 2 && !files.iter().any(|g| g.module.starts_with(&to)) {
                    to.pop();
                }
                let to = to.join("::");
                if to != from
                    && !from.starts_with(&format!("{to}::"))
                    && !to.starts_with(&format!("{from}::"))
                {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    let mut circles = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a way back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    circles.push(path.join(" -> ") + " -> " + start);
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn no_source_file_is_longer_than_one_reader_holds() {
    let long: Vec<String> = source_files()
        .iter()
        .filter(|f| !is_test_file(f) && f.code.len() > MAX_LINES)
        .map(|f| format!("src/{}: {} lines before its tests", f.path, f.code.len()))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn only_the_store_knows_which_database_it_runs_on() {
    let mut leaks = Vec::new();
    for f in source_files().iter().filter(|f| !is_test_file(f)) {
        if f.path.starts_with("store/") {
            continue;
        }
        for (n, line) in f.code.iter().enumerate() {
            for needle in [
                "sqlx",
                "\"postgres",
                "\"sqlite",
                "PgListener",
                "PgPool",
                "SqlitePool",
            ] {
                if line.contains(needle) {
                    leaks.push(format!("src/{}:{}: {}", f.path, n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "backend knowledge outside src/store: {leaks:#?}"
    );
}

#[test]
fn every_file_opens_with_a_paragraph_on_its_job() {
    let bare: Vec<String> = source_files()
        .iter()
        .filter(|f| !f.text.trim_start().starts_with("//!"))
        .map(|f| format!("src/{}", f.path))
        .collect();
    assert!(bare.is_empty(), "files without a `//!` opening: {bare:#?}");
}
