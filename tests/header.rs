//! The committed include/xent.h must be exactly what build.rs generates now.

#[test]
fn committed_header_is_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = root.join("include/xent.h");
    let status = std::process::Command::new("git")
        .args(["diff", "--exit-code", "--", "include/xent.h"])
        .current_dir(root)
        .status();
    match status {
        Ok(s) if s.code() == Some(0) => {}
        Ok(s) if s.code() == Some(1) => panic!(
            "{} differs from the committed one: the C API changed; review and commit the regenerated header",
            committed.display()
        ),
        _ => println!("not a git checkout: cannot compare the header with the committed one"),
    }
}
