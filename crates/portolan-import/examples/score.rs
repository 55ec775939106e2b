//! Scores the importer on the corpus (`tests/corpus/*.md` against their
//! `.key` answer keys) and prints per-page and overall precision, recall
//! and F1 at flow level and at port level, as markdown.
//!
//! `cargo run -p portolan-import --example score [-- DIR] [-- -v]`: `-v`
//! lists, per page, the key flows missed and the imported flows the key
//! does not have. The key format is in docs/import-corpus.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/support/score.rs"]
mod score;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let dir = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"));
    let pages = score::corpus_pages(&dir);
    if pages.is_empty() {
        eprintln!("{}: no .md pages", dir.display());
        return ExitCode::from(1);
    }
    let mut scores = Vec::new();
    for page in &pages {
        match score::score_page(page) {
            Ok(s) => scores.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    print!("{}", score::table(&scores));
    if verbose {
        for s in &scores {
            if let Some(e) = &s.error {
                println!("\n{}: import failed: {e}", s.page);
            }
            if s.missed.is_empty() && s.extra.is_empty() {
                continue;
            }
            println!("\n## {}", s.page);
            for m in &s.missed {
                println!("- missed {m}");
            }
            for x in &s.extra {
                println!("- extra  {x}");
            }
        }
    }
    ExitCode::SUCCESS
}
