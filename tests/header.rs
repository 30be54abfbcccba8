//! The committed include/xent.h must be exactly what build.rs generates now,
//! compile cleanly as C89, C99, C11, C++98 and C++17, and declare nothing
//! the shipped library does not define.

mod cross;

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn committed_header_is_fresh() {
    if !cfg!(feature = "header") {
        // build.rs regenerates include/xent.h only with the feature on.
        println!("SKIPPED: build with `--features header` (as `make test` does) to regenerate and compare the header");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = root.join("include/xent.h");
    let status = Command::new("git").args(["diff", "--exit-code", "--", "include/xent.h"]).current_dir(root).status();
    match status {
        Ok(s) if s.code() == Some(0) => {}
        Ok(s) if s.code() == Some(1) => panic!(
            "{} differs from the committed one: the C API changed; review and commit the regenerated header",
            committed.display()
        ),
        _ => println!("not a git checkout: cannot compare the header with the committed one"),
    }
}

/// Every function the header declares (`xent_name(` at a declaration).
fn declared_functions(header: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in header.lines().filter(|l| !l.starts_with(' ') && !l.starts_with('#') && l.contains('(')) {
        let Some(at) = line.find("xent_") else { continue };
        let rest = &line[at..];
        let end = rest.find('(').expect("a declaration");
        if !rest[..end].contains(' ') {
            names.push(rest[..end].to_string());
        }
    }
    names
}

/// A program that uses the header's constants by name and takes the address
/// of every declared function, so that linking it proves each is defined.
fn program(header: &str) -> String {
    let fns = declared_functions(header);
    assert!(fns.len() >= 24, "too few functions found in the header: {fns:?}");
    let table: Vec<String> = fns.iter().map(|f| format!("    (any_fn){f},")).collect();
    format!(
        r#"#include <stdio.h>
#include "xent.h"
typedef void (*any_fn)(void);
static const any_fn functions[] = {{
{}
}};
int main(int argc, char **argv) {{
    XentOptions o = xent_options_default();
    XentStatus s = XENT_STATUS_OK;
    XentReduction r = XENT_REDUCTION_NONE;
    (void)argv;
    o.reduction = r;
    switch (s) {{
    case XENT_STATUS_OK:
        break;
    default:
        return 1;
    }}
    if (functions[argc % (int)(sizeof functions / sizeof functions[0])] == 0) return 2;
    printf("%s %u %d\n", xent_version(), (unsigned)o.reduction, (int)XENT_STATUS_UNSUPPORTED);
    return 0;
}}
"#,
        table.join("\n")
    )
}

#[test]
fn the_header_defines_no_macro_but_its_guard_and_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/xent.h")).expect("include/xent.h");
    for line in header.lines().filter(|l| l.trim_start().starts_with("#define")) {
        let name = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            name == "XENT_H" || name.starts_with("XENT_VERSION"),
            "the header defines {name}: constants belong in an enum, and nothing else may be a macro ({line})"
        );
    }
}

#[test]
fn header_compiles_cleanly_as_c89_to_cpp17_and_links() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/xent.h")).expect("include/xent.h");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = tmp.join("header_check.c");
    std::fs::write(&src, program(&header)).expect("write the program");
    let lib: PathBuf = cross::c_lib_dir().join("libxent.a");
    let cross = std::env::var("XENT_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty());
    let mut builds: Vec<(&str, Command)> = Vec::new();
    for std in ["c89", "c99", "c11"] {
        builds.push((std, cross::target_cc()));
    }
    if !cross {
        for std in ["c++98", "c++17"] {
            let mut cxx = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()));
            cxx.args(["-x", "c++"]);
            builds.push((std, cxx));
        }
    } else {
        println!("cross build: the C++ compilations run natively only");
    }
    for (std, mut cmd) in builds {
        let exe = tmp.join(format!("header_check_{}", std.replace('+', "x")));
        cmd.arg(format!("-std={std}"))
            .args(["-Wall", "-Wextra", "-pedantic", "-Werror", "-I"])
            .arg(root.join("include"))
            .arg(&src);
        if std.starts_with("c++") {
            // What follows is a library, not C++ source.
            cmd.args(["-x", "none"]);
        }
        cmd.arg(&lib).args(["-lpthread", "-lm", "-ldl", "-o"]).arg(&exe);
        let out = cmd.output().expect("the compiler runs");
        assert!(
            out.status.success(),
            "-std={std}: {cmd:?}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let run = cross::run_target(&exe).output().expect("the program runs");
        assert!(run.status.success(), "-std={std}: the program failed");
        let text = String::from_utf8_lossy(&run.stdout);
        assert_eq!(text.trim(), format!("{} 2 8", env!("CARGO_PKG_VERSION")), "-std={std}");
    }
}
