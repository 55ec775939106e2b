//! Portolan firewall stage: firewall policy generated from a
//! [`Plan`](portolan_spec::plan::Plan).
//!
//! Every target implements [`Target`]: a plan and [`Options`] in, files and
//! [`GenerateWarning`]s out ([`Generated`]). Host firewalls: [`nftables`]
//! and [`iptables`], one ruleset per host (the components at one address
//! set, see [`Plan::hosts`](portolan_spec::plan::Plan::hosts)).

pub mod aws;
pub mod cilium;
pub mod cloud;
pub mod generate;
mod host;

pub use host::admitting_flows;
pub mod iptables;
pub mod kubernetes;
pub mod labels;
pub mod nftables;
pub mod rules;

pub use generate::{
    system_resolver, GenerateError, GenerateWarning, Generated, Mode, Options, Policy, Resolver,
    Target, TargetKind, WarningKind,
};
