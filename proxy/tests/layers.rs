//! The gateway crate's modules form layers: no dependency circle spans more than one top-level
//! module (`config`, `router`, `server`, ...). A module may use the ones below it, never one that
//! uses it back, so each can be read, tested and changed with only what lies below in mind.
//!
//! This reads `proxy/src`, takes every `crate::<module>` (and `super::` path reaching the crate
//! root) outside comments, literals and `#[cfg(test)]` items, and fails on any cycle between
//! top-level modules, printing it with the lines that make it. Tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a module uses another: file and line.
type Uses = BTreeMap<(String, String), Vec<String>>;

#[test]
fn no_cycle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses = Uses::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    let skipped = test_only_files(&files);
    for file in files.iter().filter(|f| !skipped.contains(*f)) {
        let path = module_path(&src, file);
        let Some(top) = path.first() else {
            continue; // lib.rs and main.rs: the crate root uses everything.
        };
        let text = fs::read_to_string(file).expect("readable source");
        for (line, target) in references(&code_only(&text), &path) {
            if target != *top {
                let at = format!(
                    "{}:{line}",
                    file.strip_prefix(&src).unwrap_or(file).display()
                );
                uses.entry((top.clone(), target)).or_default().push(at);
            }
        }
    }
    if let Some(cycle) = find_cycle(&uses) {
        let mut report = format!(
            "modules in a cycle (there may be more): {}\n",
            cycle.join(" -> ")
        );
        for pair in cycle.windows(2) {
            let at = &uses[&(pair[0].clone(), pair[1].clone())];
            report.push_str(&format!(
                "  {} -> {}: {}\n",
                pair[0],
                pair[1],
                at.join(", ")
            ));
        }
        panic!("{report}");
    }
}

/// Every `.rs` file under `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// The module path of a file: `server/host.rs` is `[server, host]`, `router/mod.rs` `[router]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Files declared as `#[cfg(test)] mod name;`.
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let code = code_only(&fs::read_to_string(file).expect("readable source"));
        let dir = match file.file_stem().and_then(|s| s.to_str()) {
            Some("mod" | "lib" | "main") => file.parent().map(Path::to_path_buf),
            _ => Some(file.with_extension("")),
        };
        let Some(dir) = dir else { continue };
        let mut rest = code.as_str();
        while let Some(i) = rest.find("#[cfg(test)]") {
            rest = &rest[i + "#[cfg(test)]".len()..];
            let item = rest.trim_start();
            if let Some(decl) = item.strip_prefix("mod ") {
                let name: String = decl.chars().take_while(|c| is_ident(*c)).collect();
                if decl[name.len()..].trim_start().starts_with(';') {
                    out.insert(dir.join(format!("{name}.rs")));
                    out.insert(dir.join(&name).join("mod.rs"));
                }
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The text with comments and the contents of string and char literals blanked (line breaks
/// kept, so line numbers hold), and `#[cfg(test)]` items removed.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"..", r#".."#, br"..": no escapes; ends at `"` and as many `#`.
            let start = chars[i..]
                .iter()
                .position(|&c| c == '"')
                .map_or(i, |p| i + p + 1);
            out.push_str("\"\"");
            i = start;
            while i < chars.len() {
                if chars[i] == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&c| c == '#')
                        .count()
                        == hashes
                {
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\'', '\u{..}'); a lifetime has no closing quote.
            out.push_str("' '");
            i += if next == Some('\\') { 3 } else { 2 };
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    without_test_items(&out)
}

/// `r"`, `r#"`, `br"`... at `i` (not inside an identifier): the number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && is_ident(chars[i - 1]) {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Blanks each item marked `#[cfg(test)]` (up to its `;` or its closing brace).
fn without_test_items(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(start) = out.find("#[cfg(test)]") {
        let bytes = out.as_bytes();
        let mut end = start;
        let mut depth = 0usize;
        while end < bytes.len() {
            match bytes[end] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                b';' if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        let end = (end + 1).min(out.len());
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
    }
    out
}

/// The top-level modules `code` names, with their line: `crate::a`, `crate::{a, b::c}`, and
/// `super::` chains that climb to the crate root from the file at `path`.
fn references(code: &str, path: &[String]) -> Vec<(usize, String)> {
    let tokens = tokens(code);
    let text = |i: usize| tokens.get(i).map_or("", |(_, t)| t.as_str());
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let chain_start = i == 0 || !matches!(text(i - 1), "::" | "$");
        let mut next = i;
        let at_root = match text(i) {
            "crate" if chain_start && text(i + 1) == "::" => {
                next = i + 2;
                true
            }
            "super" if chain_start => {
                let mut level = path.len();
                while text(next) == "super" && text(next + 1) == "::" {
                    level = level.saturating_sub(1);
                    next += 2;
                }
                level == 0 && next > i
            }
            _ => false,
        };
        if !at_root {
            i += 1;
            continue;
        }
        if text(next) == "{" {
            // A use group: the first name after `{` and after each `,` at its own depth.
            let mut depth = 0;
            let mut expect_name = false;
            while next < tokens.len() {
                match text(next) {
                    "{" => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    "," if depth == 1 => expect_name = true,
                    name if expect_name => {
                        if name != "self" && name.starts_with(is_ident) {
                            found.push((tokens[next].0, name.to_owned()));
                        }
                        expect_name = false;
                    }
                    _ => {}
                }
                next += 1;
            }
        } else if text(next).starts_with(is_ident) {
            found.push((tokens[next].0, text(next).to_owned()));
        }
        i = next.max(i + 1);
    }
    found
}

/// Identifiers, `::` and single punctuation characters, each with its line (from 1).
fn tokens(code: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if is_ident(c) {
                let mut word = String::from(c);
                while let Some(&c) = chars.peek().filter(|c| is_ident(**c)) {
                    word.push(c);
                    chars.next();
                }
                out.push((n + 1, word));
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                out.push((n + 1, "::".to_owned()));
            } else if !c.is_whitespace() {
                out.push((n + 1, c.to_string()));
            }
        }
    }
    out
}

/// A cycle in the module graph, as `a -> b -> ... -> a`, if there is one.
fn find_cycle(uses: &Uses) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in uses.keys() {
        graph.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_reader_sees_what_rustc_sees() {
    let code = code_only(
        "use crate::a::X; // crate::b\nlet s = \"crate::c\"; let r = r#\"crate::d\"#;\nuse crate::{e, f::G,\n  g};\nlet c = '{'; fn f<'a>(x: &'a str) { super::super::h::I }\n#[cfg(test)]\nmod tests { use crate::j; }\n",
    );
    let path = ["m".to_owned(), "n".to_owned()];
    let names: Vec<String> = references(&code, &path)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(names, ["a", "e", "f", "g", "h"]);
    let mut uses = Uses::new();
    uses.insert(("a".into(), "b".into()), vec![]);
    uses.insert(("b".into(), "c".into()), vec![]);
    assert_eq!(find_cycle(&uses), None);
    uses.insert(("c".into(), "a".into()), vec![]);
    assert_eq!(
        find_cycle(&uses),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
