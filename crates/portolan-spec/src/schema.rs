//! JSON Schema of the spec format, for editors and other tools.

/// The JSON Schema (draft 2020-12) of a spec file, pretty-printed.
pub fn spec_schema() -> String {
    let schema = schemars::schema_for!(crate::raw::RawSpec);
    // Serialising a schema built from our own types cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
