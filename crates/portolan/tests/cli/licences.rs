//! The dependency tree stays permissive: every package's SPDX licence
//! expression must be satisfiable with licences from the allowlist (an `OR`
//! needs one acceptable branch, an `AND` needs all). A GPL crate (such as
//! rustables or rustscan) anywhere in the tree fails this test.

use std::process::Command;

const ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "0BSD",
    "Zlib",
    "CC0-1.0",
    "MPL-2.0",
    "CDLA-Permissive-2.0",
];

/// Whether an SPDX expression can be met with allowed licences.
fn acceptable(expression: &str) -> bool {
    let spaced = expression
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut position = 0;
    let ok = or_expression(&tokens, &mut position);
    ok && position == tokens.len()
}

fn or_expression(tokens: &[&str], position: &mut usize) -> bool {
    let mut any = and_expression(tokens, position);
    while tokens.get(*position) == Some(&"OR") {
        *position += 1;
        any |= and_expression(tokens, position);
    }
    any
}

fn and_expression(tokens: &[&str], position: &mut usize) -> bool {
    let mut all = licence(tokens, position);
    while tokens.get(*position) == Some(&"AND") {
        *position += 1;
        all &= licence(tokens, position);
    }
    all
}

fn licence(tokens: &[&str], position: &mut usize) -> bool {
    let Some(token) = tokens.get(*position) else {
        return false;
    };
    *position += 1;
    if *token == "(" {
        let inner = or_expression(tokens, position);
        if tokens.get(*position) == Some(&")") {
            *position += 1;
            return inner;
        }
        return false;
    }
    // `Apache-2.0 WITH LLVM-exception`: an exception only adds permissions.
    if tokens.get(*position) == Some(&"WITH") {
        *position += 2;
    }
    ALLOWED.contains(token)
}

#[test]
fn the_expression_parser_is_strict() {
    assert!(acceptable("MIT OR Apache-2.0"));
    assert!(acceptable("(Apache-2.0 OR MIT) AND BSD-3-Clause"));
    assert!(acceptable("MIT OR Apache-2.0 OR LGPL-2.1-or-later"));
    assert!(acceptable("Apache-2.0 WITH LLVM-exception OR MIT"));
    assert!(acceptable("MIT/Apache-2.0"));
    assert!(!acceptable("GPL-3.0-or-later"));
    assert!(!acceptable("GPL-3.0-only AND MIT"));
    assert!(!acceptable("(MIT OR Apache-2.0) AND GPL-2.0-only"));
    assert!(!acceptable(""));
}

#[test]
fn every_dependency_is_permissively_licensed() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    assert!(
        packages.len() > 50,
        "expected the whole tree, got {}",
        packages.len()
    );
    let refused: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let licence = p["license"].as_str().unwrap_or("");
            (!acceptable(licence)).then(|| format!("{} {}: {licence:?}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "not permissively licensed: {refused:#?}"
    );
}
