//! Every `extern "C"` function passes its whole body through the C
//! boundary (`capi::boundary::status` or `capi::boundary::value`), so no
//! panic unwinds into a C caller and every failure sets the last error; and
//! no file of `src/` imports itself through others (the layers only import
//! downwards: capi → linear → loss → parallel, kernels).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("an entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of the block that starts at the first `{` at or after `from`.
fn block(text: &str, from: usize) -> &str {
    let open = from + text[from..].find('{').expect("a body");
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..=open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces");
}

#[test]
fn every_export_goes_through_the_boundary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src/capi"), &mut files);
    let mut exports = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let mut at = 0;
        while let Some(i) = text[at..].find("extern \"C\" fn xent_") {
            let start = at + i;
            let name: String = text[start + 14..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let body = block(&text, start);
            assert!(
                body.contains("boundary::status(") || body.contains("boundary::value("),
                "{name} in {} does not run its body through capi::boundary",
                f.display()
            );
            exports += 1;
            at = start + 1;
        }
    }
    let header = std::fs::read_to_string(root.join("include/xent.h")).expect("the header");
    let declared = header
        .lines()
        .filter(|l| {
            !l.starts_with([' ', '#', '/']) && !l.starts_with("typedef") && l.contains("xent_") && l.contains('(')
        })
        .count();
    assert_eq!(exports, declared, "exports found in src/capi vs functions the header declares");
}

/// The module path of a source file (`src/loss/row.rs` → `loss::row`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("inside src");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file that defines the longest existing prefix of `path`.
fn file_of(src: &Path, path: &[String]) -> Option<PathBuf> {
    for n in (0..=path.len()).rev() {
        let dir = path[..n].iter().fold(src.to_path_buf(), |d, p| d.join(p));
        if n == 0 {
            return Some(src.join("lib.rs"));
        }
        let as_file = dir.with_extension("rs");
        if as_file.is_file() {
            return Some(as_file);
        }
        if dir.join("mod.rs").is_file() {
            return Some(dir.join("mod.rs"));
        }
    }
    None
}

/// Paths a file names (`crate::…`, `super::…`, in `use` or inline), comments
/// stripped; a group `super::{a, b}` names each member.
fn named_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    // Spans of inline modules (`mod name {`).
    let mut inline_spans = Vec::new();
    for (i, _) in code.match_indices("mod ") {
        let rest = &code[i + 4..];
        let name_len = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').count();
        if name_len > 0 && rest[name_len..].trim_start().starts_with('{') {
            let b = block(&code, i);
            let open = i + code[i..].find('{').expect("a brace");
            inline_spans.push((open, open + b.len()));
        }
    }
    for root in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(root) {
            let start = at + i;
            at = start + root.len();
            if start > 0
                && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':')
            {
                continue;
            }
            let inline = inline_spans.iter().any(|&(a, b)| a < start && start < b);
            let base: Vec<String> = if root == "crate::" {
                Vec::new()
            } else if inline {
                // `super` inside an inline `mod x { … }` is this file's module.
                module.to_vec()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let rest = &code[start + root.len()..];
            let mut path = base.clone();
            let mut chars = rest;
            loop {
                let seg: String = chars.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if seg.is_empty() {
                    if let Some(group) = chars.strip_prefix('{') {
                        let inner = &group[..group.find('}').unwrap_or(group.len())];
                        for member in inner.split(',') {
                            let name: String =
                                member.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                            if !name.is_empty() && name != "self" {
                                let mut p = path.clone();
                                p.push(name);
                                out.push(p);
                            }
                        }
                    } else {
                        out.push(path.clone());
                    }
                    break;
                }
                if seg == "super" {
                    path.pop();
                } else if seg != "self" {
                    path.push(seg.clone());
                }
                chars = &chars[seg.len()..];
                match chars.strip_prefix("::") {
                    Some(c) => chars = c,
                    None => {
                        out.push(path.clone());
                        break;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn no_file_imports_itself_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let module = module_of(&src, f);
        let is_mod = name == "mod.rs" || name == "lib.rs";
        let mut paths = named_paths(&text, &module);
        if is_mod {
            // A parent names its children by their bare names.
            for line in text.lines() {
                let decl = line.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                if let Some(child) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                    let used = text.match_indices(&format!("{child}::")).any(|(i, _)| {
                        i == 0
                            || !matches!(text.as_bytes()[i - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b':')
                    });
                    if used {
                        paths.push(module.iter().cloned().chain([child.to_string()]).collect());
                    }
                }
            }
        }
        for p in paths {
            if let Some(target) = file_of(&src, &p)
                && &target != f
            {
                edges.entry(f.clone()).or_default().insert(target);
            }
        }
    }
    let total: usize = edges.values().map(BTreeSet::len).sum();
    assert!(total > 40, "only {total} imports found: the scan is broken");
    // Any cycle, not only two files importing each other: a depth-first
    // search that reports the path back to a file on the stack.
    fn visit<'a>(
        f: &'a PathBuf,
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        stack: &mut Vec<&'a PathBuf>,
        done: &mut BTreeSet<&'a PathBuf>,
    ) -> Option<String> {
        if let Some(at) = stack.iter().position(|g| *g == f) {
            let names: Vec<String> = stack[at..].iter().chain([&f]).map(|p| p.display().to_string()).collect();
            return Some(names.join(" -> "));
        }
        if !done.insert(f) {
            return None;
        }
        stack.push(f);
        for g in edges.get(f).into_iter().flatten() {
            if let Some(c) = visit(g, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for f in edges.keys() {
        if let Some(cycle) = visit(f, &edges, &mut Vec::new(), &mut done) {
            panic!("files that import each other (through the others listed): {cycle}");
        }
    }
}
