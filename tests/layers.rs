//! The source tree's shape, checked: folders are layers and imports point down.
//!
//! Reads `src/` as text (no build step, no extra crate) and fails with the file and the
//! offending path when a module reaches up a layer, when modules import each other round a
//! circle, when a file outgrows what one reader holds in mind, when backend knowledge leaks
//! out of `store/`, or when a file lacks its opening `//!` paragraph.
//!
//! Paths are read as the compiler would resolve them: `crate::a::b`, `super::…` and
//! `self::…` (relative to the file's module), and grouped imports (`use crate::{a, b::c}`)
//! over several lines. Comments and string literals are blanked first. Test code is left
//! out: `tests.rs` files, files declared with `#[cfg(test)] mod x;`, and every item marked
//! `#[cfg(test)]` (a test may use a fixture from any layer).

#![allow(clippy::panic)]

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

/// Longest source file, counting lines of non-test code.
const MAX_LINES: usize = 500;

struct SourceFile {
    /// Path below `src/`, with `/` separators.
    path: String,
    /// The module path, e.g. `["lifecycle", "grants", "check"]` (`mod.rs` is its folder).
    module: Vec<String>,
    /// The code with comments, string contents and test items blanked (lines kept).
    code: String,
    text: String,
    /// Names of child modules declared `#[cfg(test)] mod name;` in this file.
    test_children: Vec<String>,
}

impl SourceFile {
    fn is_test(&self, all: &[SourceFile]) -> bool {
        if self.path.ends_with("tests.rs") {
            return true;
        }
        let Some((name, parent)) = self.module.split_last() else {
            return false;
        };
        all.iter()
            .any(|f| f.module == parent && f.test_children.iter().any(|c| c == name))
    }

    fn code_lines(&self) -> usize {
        self.code.lines().filter(|l| !l.trim().is_empty()).count()
    }
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    paths.sort();
    let files: Vec<SourceFile> = paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_string)
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let blank = blank_comments_and_strings(&text);
            let (code, test_children) = without_test_items(&blank);
            SourceFile {
                path: rel,
                module,
                code,
                text,
                test_children,
            }
        })
        .collect();
    assert!(
        files.len() > 50,
        "read only {} files under src/: is this the jitgate repository?",
        files.len()
    );
    files
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Replaces comments and the contents of string and char literals with spaces, keeping
/// every newline, so that later scans see only code and line numbers still match.
fn blank_comments_and_strings(text: &str) -> String {
    blank(text, false)
}

/// Comments blanked, strings kept.
fn blank_comments(text: &str) -> String {
    blank(text, true)
}

fn blank(text: &str, keep_strings: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let kept = |c: char| if keep_strings { c } else { blank(c) };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !is_ident(out.chars().last())
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('"');
            for _ in i + 1..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    out.push('"');
                    i += 1 + hashes;
                    out.extend(std::iter::repeat_n(' ', hashes));
                    break;
                }
                out.push(kept(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(if keep_strings { '\\' } else { ' ' });
                    i += 1;
                }
                if let Some(&d) = chars.get(i) {
                    out.push(if keep_strings { d } else { blank(d) });
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x', '\n', '\''), not a lifetime.
            out.push('\'');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Blanks every item marked `#[cfg(test)]` (a block up to its matching brace, or a `mod x;`
/// declaration, whose name is returned), keeping newlines.
fn without_test_items(code: &str) -> (String, Vec<String>) {
    let mut out: Vec<char> = code.chars().collect();
    let mut test_children = Vec::new();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= out.len() {
        if out[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        // The item runs to its first `;` (a declaration) or its block's matching `}`.
        let start = i;
        let mut j = i + marker.len();
        let mut depth = 0usize;
        let mut end = out.len();
        while j < out.len() {
            match out[j] {
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let item: String = out[start..end].iter().collect();
        let declaration = item.trim_end().ends_with(';');
        if let Some(name) = item
            .split_whitespace()
            .skip_while(|w| *w != "mod")
            .nth(1)
            .filter(|_| declaration)
        {
            test_children.push(name.trim_end_matches(';').to_string());
        }
        for c in &mut out[start..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    (out.into_iter().collect(), test_children)
}

/// A module path named in code, with the line it is on.
struct Use {
    line: usize,
    /// Absolute module path segments, e.g. `["lifecycle", "grants", "Grants"]`.
    target: Vec<String>,
}

/// Every path the code names that starts at `crate`, `super` or `self`, made absolute.
fn uses(file: &SourceFile) -> Vec<Use> {
    let code: Vec<char> = file.code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest: String = code[i..code.len().min(i + 8)].iter().collect();
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| rest.starts_with(r));
        let preceded = i > 0 && (is_ident(Some(code[i - 1])) || code[i - 1] == ':');
        let Some(root) = root.filter(|_| !preceded) else {
            i += 1;
            continue;
        };
        let line = code[..i].iter().filter(|c| **c == '\n').count() + 1;
        // A file's module path already names its folder for mod.rs, so `self` and `super`
        // resolve the same way in both kinds of file.
        let base: Vec<String> = match root {
            "crate::" => Vec::new(),
            "self::" => file.module.clone(),
            _ => parent(&file.module),
        };
        let mut j = i + root.len();
        // `super::super::…`
        let mut base = base;
        while code[j..].iter().collect::<String>().starts_with("super::") {
            base = parent(&base);
            j += "super::".len();
        }
        let mut paths = Vec::new();
        j = read_tree(&code, j, base, &mut paths);
        for target in paths {
            found.push(Use { line, target });
        }
        i = j.max(i + 1);
    }
    found
}

fn parent(module: &[String]) -> Vec<String> {
    module
        .split_last()
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default()
}

/// Reads `a::b::{c, d::e}` from `at`, pushing each full path; returns where it stopped.
fn read_tree(
    code: &[char],
    mut at: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        while code.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        if code.get(at) == Some(&'{') {
            at += 1;
            loop {
                at = read_tree(code, at, path.clone(), out);
                while code.get(at).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    at += 1;
                }
                match code.get(at) {
                    Some('}') => return at + 1,
                    None => return at,
                    _ => {}
                }
            }
        }
        let start = at;
        while is_ident(code.get(at).copied()) {
            at += 1;
        }
        let segment: String = code[start..at].iter().collect();
        if segment.is_empty() {
            out.push(path);
            return at;
        }
        if segment != "self" {
            path.push(segment);
        }
        if code.get(at) == Some(&':') && code.get(at + 1) == Some(&':') {
            at += 2;
        } else {
            out.push(path);
            return at;
        }
    }
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == top)
}

/// The module a path names: its longest prefix that is a file or folder of `src/`.
fn module_of(target: &[String], files: &[SourceFile]) -> Vec<String> {
    (1..=target.len())
        .rev()
        .map(|n| target[..n].to_vec())
        .find(|prefix| files.iter().any(|f| f.module == *prefix))
        .unwrap_or_else(|| target.iter().take(1).cloned().collect())
}

#[test]
fn every_import_points_to_the_same_or_a_lower_layer() {
    let files = source_files();
    let mut upward = Vec::new();
    let mut unknown = Vec::new();
    for f in files.iter().filter(|f| !f.is_test(&files)) {
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
        for u in uses(f) {
            let Some(target_top) = u.target.first() else {
                continue;
            };
            match layer_of(target_top) {
                Some(l) if l <= own => {}
                Some(_) => upward.push(format!(
                    "src/{}:{}: {} uses crate::{}",
                    f.path,
                    u.line,
                    top,
                    u.target.join("::")
                )),
                None => unknown.push(format!("src/{}:{}: crate::{}", f.path, u.line, target_top)),
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
    // Every module, at any depth. A module and its own children are one unit (a parent
    // declares its children; children use the types their parent holds).
    let files = source_files();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.is_test(&files)) {
        if matches!(f.module.first().map(String::as_str), Some("lib" | "main")) {
            continue;
        }
        for u in uses(f) {
            let to = module_of(&u.target, &files);
            let related = to.starts_with(&f.module) || f.module.starts_with(&to);
            // Siblings are compared at the level where they part.
            let shared = to.iter().zip(&f.module).take_while(|(a, b)| a == b).count();
            if !related {
                let from = f.module[..(shared + 1).min(f.module.len())].to_vec();
                let to = to[..(shared + 1).min(to.len())].to_vec();
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.join("::")])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    circles.push(format!("{} -> {}", path.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.join("::"));
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn no_source_file_is_longer_than_one_reader_holds() {
    let files = source_files();
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.is_test(&files) && f.code_lines() > MAX_LINES)
        .map(|f| {
            format!(
                "src/{}: {} lines of code outside tests",
                f.path,
                f.code_lines()
            )
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn only_the_store_knows_which_database_it_runs_on() {
    let files = source_files();
    let mut leaks = Vec::new();
    for f in files
        .iter()
        .filter(|f| !f.is_test(&files) && !f.path.starts_with("store/"))
    {
        // Strings count here (a URL scheme in a string is backend knowledge); comments don't.
        let code = without_test_items(&blank_comments(&f.text)).0;
        for (n, line) in code.lines().enumerate() {
            for needle in [
                "sqlx",
                "postgres",
                "sqlite",
                "PgListener",
                "PgPool",
                "SqlitePool",
            ] {
                if line
                    .to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase())
                {
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
fn the_parser_sees_what_the_compiler_sees() {
    let file = |path: &str, module: &[&str], text: &str| {
        let blank = blank_comments_and_strings(text);
        let (code, test_children) = without_test_items(&blank);
        SourceFile {
            path: path.into(),
            module: module.iter().map(|s| s.to_string()).collect(),
            code,
            text: text.into(),
            test_children,
        }
    };
    let f = file(
        "store/sql.rs",
        &["store", "sql"],
        "use super::changes::X;\nuse crate::{util::clock, auth::{session, identity::Identity}};\n\
         let s = \"crate::edge\"; // crate::ops\n#[cfg(test)]\nmod tests { use crate::cli; }\n\
         fn after() { crate::gate::Gate::new(); }\n#[cfg(test)]\nmod properties;\n",
    );
    let targets: Vec<String> = uses(&f).iter().map(|u| u.target.join("::")).collect();
    assert_eq!(
        targets,
        [
            "store::changes::X",
            "util::clock",
            "auth::session",
            "auth::identity::Identity",
            "gate::Gate::new"
        ]
    );
    assert_eq!(f.test_children, ["properties"]);
    let root = file(
        "store/mod.rs",
        &["store"],
        "use super::util;\nuse self::sql::SqlStore;\n",
    );
    let targets: Vec<String> = uses(&root).iter().map(|u| u.target.join("::")).collect();
    assert_eq!(targets, ["util", "store::sql::SqlStore"]);
    assert_eq!(uses(&f).last().map(|u| u.line), Some(6));
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

#[test]
fn the_readme_code_map_names_every_folder_and_the_layer_list_matches_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let map = readme
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap_or_else(|| panic!("README.md has no \"Code map\" section"));
    let in_readme: BTreeSet<String> = map
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter_map(|name| name.strip_suffix('/'))
        .map(str::to_string)
        .collect();
    let mut folders = BTreeSet::new();
    let entries = std::fs::read_dir(root.join("src")).unwrap_or_else(|e| panic!("src: {e}"));
    for entry in entries.flatten() {
        if entry.path().is_dir() {
            folders.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let layers: BTreeSet<String> = LAYERS.iter().map(|l| l.to_string()).collect();
    assert_eq!(in_readme, folders, "README code map vs the folders of src/");
    assert_eq!(
        layers, folders,
        "LAYERS in this test vs the folders of src/"
    );
}
