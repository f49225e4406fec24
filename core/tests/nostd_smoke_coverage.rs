//! The no_std smoke crate (`ci/nostd-smoke`, built for `thumbv6m-none-eabi` by `ci/run.sh nostd`)
//! proves "no alloc" only for the code it reaches: every public function of the core must be
//! called there. This test lists the core's `pub fn`s from its sources and fails naming each one
//! the smoke crate never calls, so a new entry point cannot slip past the bare-metal build.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read core/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Names of the `pub fn` / `pub const fn` items in `text`, up to its `#[cfg(test)]` module.
fn public_functions(text: &str, names: &mut BTreeSet<String>) {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line
            .strip_prefix("pub fn ")
            .or_else(|| line.strip_prefix("pub const fn "))
        else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name);
    }
}

#[test]
fn smoke_crate_calls_every_public_function() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut names = BTreeSet::new();
    for file in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        public_functions(&fs::read_to_string(file).expect("read source"), &mut names);
    }
    assert!(names.len() > 50, "found only {names:?}");

    let smoke = fs::read_to_string(root.join("../ci/nostd-smoke/src/main.rs"))
        .expect("read ci/nostd-smoke/src/main.rs");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !smoke.contains(&format!("{name}(")))
        .collect();
    println!(
        "{} public functions, all called by the smoke crate",
        names.len()
    );
    assert!(
        missing.is_empty(),
        "ci/nostd-smoke/src/main.rs never calls {missing:?}"
    );
}
