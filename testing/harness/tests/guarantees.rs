//! Each crate's GUARANTEES.md names, for each guarantee, the tests that hold it: each must
//! exist, in the file it is said to be in, so the lists cannot rot as tests are renamed.
//! A file is named relative to its crate; `(workerd)` is this crate's workerd suite of that
//! crate.

use std::path::{Path, PathBuf};

/// `(test, file)` for every test named on a bullet line of `crate_dir/GUARANTEES.md`.
fn named_tests(crate_dir: &Path, workerd: &Path) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(crate_dir.join("GUARANTEES.md")).expect("GUARANTEES.md");
    let mut named = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("- `")) {
        let (names, file) = line.rsplit_once(" (").expect("a bullet ends with (file)");
        let file = match file.trim_end_matches(')') {
            "workerd" => workerd.to_path_buf(),
            file => crate_dir.join(file),
        };
        for name in names.split('`').skip(1).step_by(2) {
            named.push((name.to_owned(), file.clone()));
        }
    }
    named
}

fn check(krate: &str, workerd_suite: &str, at_least: usize) {
    let root = lumenize_harness::workspace_root();
    let named = named_tests(&root.join(krate), &root.join("testing/harness/tests").join(workerd_suite));
    assert!(named.len() >= at_least, "{krate}: only {} tests named", named.len());
    let missing: Vec<String> = named
        .iter()
        .filter(|(name, file)| {
            let source = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            !source.contains(&format!("fn {name}(")) && !source.contains(&format!("fn {name}<"))
        })
        .map(|(name, file)| format!("{name} in {}", file.display()))
        .collect();
    assert!(missing.is_empty(), "{krate}/GUARANTEES.md names tests that do not exist: {missing:?}");
}

#[test]
fn every_test_that_lumenize_alarms_guarantees_md_names_exists() {
    check("lumenize-alarms", "alarms.rs", 40);
}

#[test]
fn every_test_that_lumenize_call_guarantees_md_names_exists() {
    check("lumenize-call", "calls.rs", 30);
}
