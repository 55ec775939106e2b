//! Fuzz the spec reader: any byte string must give a spec or diagnostics,
//! never a panic, and diagnostics must render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_spec::{load_spec, render_diagnostics, RenderStyle, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_spec(SourceFile::new("fuzz.yaml", text)) {
        Ok(loaded) => {
            let _ = render_diagnostics(&loaded.warnings, RenderStyle::Plain);
            let _ = serde_json::to_string(&loaded.value);
        }
        Err(diagnostics) => {
            let _ = render_diagnostics(&diagnostics, RenderStyle::Plain);
            let _ = diagnostics.to_json();
        }
    }
});
