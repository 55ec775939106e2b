//! Fuzz the page importer: any byte string must give an import error or a
//! spec that the spec reader accepts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_import::{import_markdown, source_from_bytes, ImportOptions};
use portolan_spec::{load_spec, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = source_from_bytes("fuzz.md", data) else {
        return;
    };
    match import_markdown(&source, &ImportOptions::default()) {
        Ok(imported) => {
            let _ = serde_json::to_string(&imported.report);
            if let Err(diagnostics) = load_spec(SourceFile::new("fuzz.yaml", imported.yaml.clone())) {
                panic!(
                    "the importer wrote an invalid spec:\n{}\n{}",
                    portolan_spec::render_diagnostics(&diagnostics, portolan_spec::RenderStyle::Plain),
                    imported.yaml
                );
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
