//! Times `import_markdown` on generated pages of N rows (default 20,000):
//! a port table with a source column and descriptions, a port-first bullet
//! list, and per-component ingress/egress tables. Build with `--release`:
//! `cargo run --release -p portolan-import --example bench [-- ROWS]`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use portolan_import::{import_markdown, ImportOptions};
use portolan_spec::SourceFile;

fn table(rows: usize) -> String {
    let mut page = String::from("# Bench networking\n\n## Server\n\n| Port | Protocol | Source | Description |\n|---|---|---|---|\n");
    for i in 0..rows {
        let _ = writeln!(
            page,
            "| {} | TCP | Client {} | Clients connect here, only if feature {} is enabled |",
            1024 + i % 60000,
            i % 500,
            i % 50
        );
    }
    page
}

fn bullets(rows: usize) -> String {
    let mut page = String::from("# Bench networking\n\n## Server\n\nThe server must be able to reach the following hosts:\n\n");
    for i in 0..rows {
        let _ = writeln!(
            page,
            "- {}: service {i}, for client {} (TCP)",
            1024 + i % 60000,
            i % 300
        );
    }
    page
}

fn sections(rows: usize) -> String {
    let mut page = String::from("# Bench networking\n\n");
    for c in 0..rows / 10 {
        let _ = writeln!(page, "## Component {c}\n\n### Ingress\n\n| Name | Port | Protocol | Optional/Required | Description |\n|---|---|---|---|---|");
        for i in 0..5 {
            let _ = writeln!(
                page,
                "| Component {} | {} | TCP | Required | Row {i} |",
                (c + 1) % (rows / 10),
                2000 + i
            );
        }
        let _ = writeln!(page, "\n### Egress\n\n| Name | Port | Protocol | Optional/Required | Description |\n|---|---|---|---|---|");
        for i in 0..5 {
            let _ = writeln!(
                page,
                "| Component {} | {} | TCP | Required | Row {i} |",
                (c + 1) % (rows / 10),
                2000 + i
            );
        }
        page.push('\n');
    }
    page
}

/// CPU time this thread has spent, in seconds, where Linux says it.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn main() -> ExitCode {
    let rows: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 20_000,
        Some(Ok(n)) if (10..=1_000_000).contains(&n) => n,
        Some(_) => {
            eprintln!("usage: bench [ROWS] (10 to 1,000,000)");
            return ExitCode::from(2);
        }
    };
    for (shape, page) in [
        ("port table", table(rows)),
        ("bullets", bullets(rows)),
        ("ingress/egress sections", sections(rows)),
    ] {
        let source = SourceFile::new("bench.md", page);
        let start = Instant::now();
        let cpu = cpu_seconds();
        match import_markdown(&source, &ImportOptions::default()) {
            Ok(imported) => println!(
                "{shape}: {rows} rows, {} flows, {:.3} s wall, {} CPU",
                imported.report.flows_imported,
                start.elapsed().as_secs_f64(),
                match (cpu, cpu_seconds()) {
                    (Some(a), Some(b)) => format!("{:.3} s", b - a),
                    _ => "unknown".to_owned(),
                }
            ),
            Err(e) => {
                eprintln!("{shape}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
