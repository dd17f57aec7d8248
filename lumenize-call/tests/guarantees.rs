//! GUARANTEES.md names, for each guarantee, the tests that hold it: each must exist, in the
//! file it is said to be in, so the list cannot rot as tests are renamed.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

/// `(test, file)` for every test named on a bullet line of `GUARANTEES.md`.
fn named_tests(manifest_dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(manifest_dir.join("GUARANTEES.md")).expect("GUARANTEES.md");
    let mut named = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("- `")) {
        let (names, file) = line.rsplit_once(" (").expect("a bullet ends with (file)");
        let file = file.trim_end_matches(')');
        let file = if file == "workerd" { "../testing/harness/tests/calls.rs" } else { file };
        for name in names.split('`').skip(1).step_by(2) {
            named.push((name.to_owned(), file.to_owned()));
        }
    }
    named
}

#[test]
fn every_test_that_guarantees_md_names_exists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let named = named_tests(dir);
    assert!(named.len() > 30, "only {} tests named", named.len());
    let missing: Vec<String> = named
        .iter()
        .filter(|(name, file)| {
            let source = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            !source.contains(&format!("fn {name}(")) && !source.contains(&format!("fn {name}<"))
        })
        .map(|(name, file)| format!("{name} in {file}"))
        .collect();
    assert!(missing.is_empty(), "GUARANTEES.md names tests that do not exist: {missing:?}");
}
