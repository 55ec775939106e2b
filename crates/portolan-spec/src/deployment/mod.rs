//! The deployment file: where the roles of a spec run, which features are
//! enabled and which values the parameters take.
//!
//! Like the spec, it is read in two steps, in modules of the same names as
//! the spec's: [`RawDeployment`] (`raw`) is the unchecked form, exactly as
//! the YAML says it (it also produces the JSON Schema,
//! [`deployment_schema`]); [`load_deployment`] (`check`, on the checker
//! shell the spec shares) checks it against a [`Spec`](crate::Spec) into a
//! [`Deployment`] (`model`), or returns every problem as
//! [`Diagnostics`](crate::Diagnostics). `placement`, `hosts` and `flows`
//! hold the parts of the check about one kind of problem.
//!
//! ```
//! use portolan_spec::{load_spec, SourceFile};
//! use portolan_spec::deployment::load_deployment;
//!
//! let spec = load_spec(SourceFile::new("portolan.yaml", "portolan: 1
//! system: {name: Demo}
//! components: [{id: web}, {id: db, kind: dependency}]
//! flows: [{from: web, to: db, protocol: tcp, port: 5432}]
//! ")).unwrap().value;
//! let deployment = load_deployment(SourceFile::new("deployment.yaml", "deployment: 1
//! components:
//!   web: {addresses: [192.0.2.10]}
//!   db: {addresses: [192.0.2.20, \"2001:db8::20\"]}
//! "), &spec).unwrap().value;
//! let db = spec.component_by_id("db").unwrap();
//! assert_eq!(deployment.components[&db].addresses.len(), 2);
//! ```

mod check;
mod flows;
mod hosts;
mod model;
mod placement;
mod raw;
#[cfg(test)]
mod tests;

pub use check::load_deployment;
pub(crate) use check::suggest;
pub use flows::is_placed;
pub use model::*;
pub use placement::{parse_address, parse_proxy};
pub use raw::*;
