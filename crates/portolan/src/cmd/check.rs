//! `portolan check`: probe every flow this host must originate.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use comfy_table::{presets, ColumnConstraint, ContentArrangement, Table};
use portolan_preflight::{
    default_token, derive_checks, hostname, junit_xml, rfc3339, roots_with_pem, run_checks,
    sha256_hex, Allowlist, CheckOptions, DeploymentIdentity, HostResults, Limit, Settings,
    SpecIdentity, Summary, UdpAgainst, Untested, DEFAULT_TLS_PORTS, RESULTS_FORMAT,
};
use portolan_probe::{ProbeOptions, Proxy};
use portolan_spec::deployment::Deployment;
use portolan_spec::plan::Plan;
use portolan_spec::Spec;

use crate::cli::{CheckArgs, CheckFormat, UdpAgainstArg};
use crate::output::{write_output, write_stdout};
use crate::status::{CmdError, CmdResult, ExitStatus};

/// A spec, a deployment and their plan, with the hashes results carry.
pub struct Loaded {
    pub spec: Spec,
    pub deployment: Deployment,
    pub plan: Plan,
    pub spec_sha256: String,
    pub deployment_sha256: String,
}

impl Loaded {
    /// Reads and checks both files (diagnostics printed) and plans.
    pub fn read(spec: &Path, deployment: &Path) -> Result<Self, CmdError> {
        let spec = super::load_spec_for_deployment(spec)?;
        let deployment = super::plan::load_deployment_or_report(deployment, &spec)?;
        let plan = portolan_spec::plan::plan(&spec, &deployment);
        Ok(Self {
            spec_sha256: sha256_hex(spec.source.text.as_bytes()),
            deployment_sha256: sha256_hex(deployment.source.text.as_bytes()),
            spec,
            deployment,
            plan,
        })
    }
}

/// A current-thread runtime: the probe engine polls everything on one task.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(args: &CheckArgs) -> CmdResult {
    let loaded = Loaded::read(&args.spec, &args.deployment)?;
    let udp = match args.udp {
        UdpAgainstArg::Listener => UdpAgainst::Listener,
        UdpAgainstArg::Service => UdpAgainst::Service,
    };
    let options = CheckOptions {
        from: args.from,
        token: args
            .token
            .clone()
            .unwrap_or_else(|| default_token(&loaded.spec_sha256)),
        udp,
        tls_ports: args
            .tls_ports
            .clone()
            .unwrap_or_else(|| DEFAULT_TLS_PORTS.to_vec()),
        max_ports_per_flow: args.max_ports,
        // Asked here, on the thread that probes: the answer belongs to this
        // network namespace.
        icmp_unavailable: portolan_probe::icmp_echo_permitted(
            args.from.is_some_and(|from| from.is_ipv6()),
        )
        .err(),
    };
    let mut set = derive_checks(&loaded.spec, &loaded.plan, &args.component, &options)?;
    name_the_limits(&mut set.untested);
    // Only from a host of the component: a probe from another host's
    // address proves nothing about this one's flows.
    let here = portolan_preflight::ensure_this_host(&loaded.plan, &args.component, args.from)?;
    if !here.verifiable {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "warning: `{}` is placed by {} only: this host cannot be checked to be one of its hosts",
                here.component, here.looked_for
            );
        }
    }
    let allowlist = Allowlist::new(&loaded.plan, &args.component)?;
    let proxy = Proxy::from_env().map_err(|e| CmdError::input(format!("HTTPS_PROXY: {e}")))?;
    let tls_roots = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| CmdError::input(format!("cannot read {}: {e}", path.display())))?;
            Some(roots_with_pem(&path.display().to_string(), &pem)?)
        }
        None => None,
    };
    let probe_options = ProbeOptions {
        concurrency: args.concurrency,
        timeout: Duration::from_millis(args.timeout),
        retries: args.retries,
        proxy: proxy.clone(),
        tls_roots,
        ..ProbeOptions::default()
    };
    let started = SystemTime::now();
    let checks = runtime()?.block_on(run_checks(&allowlist, &set, &probe_options))?;
    let finished = SystemTime::now();
    let (components, externals, flows) = HostResults::matrix_records(&loaded.spec, &loaded.plan);
    let summary = Summary::of(&checks, &set.untested);
    let results = HostResults {
        format: RESULTS_FORMAT.to_owned(),
        spec: SpecIdentity {
            system: loaded.spec.system.name.clone(),
            file: args.spec.display().to_string(),
            sha256: loaded.spec_sha256.clone(),
        },
        deployment: DeploymentIdentity {
            name: loaded.deployment.name.clone(),
            file: args.deployment.display().to_string(),
            sha256: loaded.deployment_sha256.clone(),
        },
        component: set.component.clone(),
        host: hostname(),
        from: args.from,
        addresses: here.held.clone(),
        started_at: rfc3339(started),
        finished_at: rfc3339(finished),
        settings: Settings {
            timeout_ms: args.timeout,
            retries: args.retries,
            concurrency: args.concurrency,
            udp,
            https_proxy: proxy.as_ref().map(Proxy::authority),
        },
        components,
        externals,
        flows,
        checks,
        untested: set.untested,
        summary,
    };
    let table = table(&results, args.strict);
    let text = match args.format {
        CheckFormat::Table => table.clone(),
        CheckFormat::Json => results.to_json()?,
        CheckFormat::Junit => junit_xml(&results)?,
    };
    write_output(args.output.as_deref(), &text)?;
    if args.output.is_some() && args.format != CheckFormat::Table {
        write_stdout(&table)?;
    }
    Ok(ExitStatus::from_check(results.passed(args.strict)))
}

/// The table width: `COLUMNS` when set, else 120.
fn width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 60)
        .unwrap_or(120)
}

fn table(results: &HostResults, strict: bool) -> String {
    let mut out = format!(
        "{}: {} on {}{}, {} probe(s)\n",
        results.spec.system,
        results.component,
        results.host,
        results
            .from
            .map(|f| format!(" from {f}"))
            .unwrap_or_default(),
        results.checks.len()
    );
    if !results.checks.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width())
            .set_header(["", "flow", "probe", "outcome", "details"]);
        if let Some(column) = t.column_mut(0) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        for check in &results.checks {
            let verdict = match (check.result.is_pass(), check.required) {
                (true, _) => "ok",
                (false, true) => "FAIL",
                (false, false) => "fail (optional)",
            };
            t.add_row([
                verdict.to_owned(),
                check.flow.clone(),
                portolan_preflight::probe_text(check),
                check.result.outcome.class.to_string(),
                portolan_preflight::detail_text(check),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if !results.untested.is_empty() {
        out.push_str(&format!("\nNot probed ({}):\n", results.untested.len()));
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width())
            .set_header(["flow", "required", "why"]);
        for u in &results.untested {
            t.add_row([
                u.flow.clone(),
                if u.required { "yes" } else { "optional" }.to_owned(),
                u.reason.clone(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    let s = &results.summary;
    out.push_str(&format!(
        "\n{} passed, {} failed ({} of required flows), {} not probed ({} of required flows): {}\n",
        s.passed,
        s.failed,
        s.required_failed,
        s.untested,
        s.required_untested,
        if results.passed(strict) {
            "every required flow probed passes"
        } else if s.required_failed > 0 {
            "FAIL"
        } else {
            "FAIL (--strict: required flows not probed)"
        }
    ));
    out
}

/// The library says which limit left a flow out; the flag that sets it is
/// ours to name.
pub fn name_the_limits(untested: &mut [Untested]) {
    for u in untested {
        if u.limit == Some(Limit::PortsPerFlow) {
            u.reason.push_str(" (--max-ports)");
        }
    }
}
