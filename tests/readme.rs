//! The README's C example must compile (with -Werror) and run.

use std::path::Path;
use std::process::Command;

#[test]
fn readme_c_example_compiles_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme.find("```c\n").expect("a C example in the README") + 5;
    let len = readme[start..].find("```").expect("closed code block");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = tmp.join("readme_example.c");
    std::fs::write(&src, &readme[start..start + len]).expect("write example");
    let deps = std::env::current_exe().expect("exe").parent().expect("deps").to_path_buf();
    let exe = tmp.join("readme_example");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&deps)
        .arg("-lxent")
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .status()
        .expect("cc runs");
    assert!(status.success(), "the README example does not compile");
    let out = Command::new(&exe).output().expect("example runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("loss "));
}
