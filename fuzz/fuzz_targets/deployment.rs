//! Fuzz the deployment reader and the planner against the Circonus example:
//! any text gives a plan or diagnostics, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portolan_spec::deployment::load_deployment;
use portolan_spec::{load_spec, render_diagnostics, RenderStyle, SourceFile, Spec};

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = include_str!("../../examples/circonus-inside/portolan.yaml");
        load_spec(SourceFile::new("portolan.yaml", text))
            .expect("the example is valid")
            .value
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_deployment(SourceFile::new("deployment.yaml", text), spec()) {
        Ok(loaded) => {
            let plan = portolan_spec::plan::plan(spec(), &loaded.value);
            let _ = serde_json::to_string(&plan);
        }
        Err(diagnostics) => {
            let _ = render_diagnostics(&diagnostics, RenderStyle::Plain);
        }
    }
});
