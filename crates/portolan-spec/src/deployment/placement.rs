//! Placements: addresses, proxies, Kubernetes selectors and AWS groups, as
//! the deployment writes them for a component or an external endpoint.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::check::DeploymentChecker;
use super::model::*;
use super::raw::*;
use crate::check::is_valid_host;
use crate::diag::{Code, Diagnostic, Span};

/// Parses one address: an IPv4 or IPv6 address, a CIDR, or a DNS name.
/// The error says what is wrong, for a diagnostic's label.
pub fn parse_address(text: &str) -> Result<Address, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(Address::Net(IpNet::from(addr)));
    }
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "host bits set: the block is {}, the address is {}",
                net.trunc(),
                net.addr()
            ));
        }
        return Ok(Address::Net(net));
    }
    let looks_numeric = text
        .split('.')
        .all(|label| label.chars().all(|c| c.is_ascii_digit()));
    if text.contains([':', '/', '*']) || looks_numeric || !is_valid_host(text) {
        return Err("not an IP address, CIDR or DNS name".to_owned());
    }
    Ok(Address::Host(text.to_ascii_lowercase()))
}

/// Parses `address:port`, `[v6]:port` or `name:port`.
pub fn parse_proxy(text: &str) -> Result<Proxy, String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or("write an IPv6 proxy as [address]:port")?;
        (host, port)
    } else {
        text.rsplit_once(':')
            .ok_or("a proxy is address:port, e.g. 192.0.2.50:3128")?
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| format!("`{port}` is not a port in 1..65535"))?;
    let address = parse_address(host)?;
    if let Address::Net(net) = &address {
        if net.prefix_len() != net.max_prefix_len() {
            return Err("a proxy is one address, not a block".to_owned());
        }
    }
    Ok(Proxy { address, port })
}

impl DeploymentChecker<'_, '_> {
    pub(super) fn check_addresses(&mut self, raw: &[Spanned<String>]) -> Vec<Address> {
        let mut out = Vec::new();
        for text in raw {
            let span = self.c.span(text);
            match parse_address(&text.value) {
                Ok(address) => {
                    if !out.contains(&address) {
                        out.push(address);
                    }
                }
                Err(why) => self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidAddress,
                        format!("`{}` is not an address", text.value),
                    )
                    .with_label(span, why)
                    .with_help(
                        "write an IPv4 or IPv6 address (192.0.2.10, \"2001:db8::10\"), a CIDR \
                         (192.0.2.0/24) or a DNS name (db.example.net); quote IPv6 addresses",
                    ),
                ),
            }
        }
        out
    }

    pub(super) fn check_component_placement(
        &mut self,
        raw: &RawComponentPlacement,
        span: Span,
    ) -> Placement {
        let addresses = self.check_addresses(&raw.addresses);
        let kubernetes = raw
            .kubernetes
            .as_ref()
            .and_then(|k| self.check_kubernetes(k));
        let aws = raw
            .aws
            .as_ref()
            .and_then(|a| self.check_aws(a, false, span));
        let host = raw.host.as_ref().and_then(|h| {
            if is_host_name(&h.value) {
                return Some(h.value.clone());
            }
            let span = self.c.span(h);
            self.c.push(
                Diagnostic::new(
                    Code::DeploymentInvalidPlacement,
                    format!("`{}` is not a host name", h.value),
                )
                .with_label(span, "not usable as a host name")
                .with_help(
                    "a host name is 1 to 63 lowercase letters, digits, '-', '_', '.' and '+', \
                     starting with a letter or digit (it names the host's ruleset file)",
                ),
            );
            None
        });
        Placement {
            addresses,
            kubernetes,
            aws,
            proxy: None,
            host,
            span,
        }
    }

    pub(super) fn check_external_binding(
        &mut self,
        raw: &RawExternalBinding,
        span: Span,
    ) -> Placement {
        let addresses = self.check_addresses(&raw.addresses);
        let proxy = raw.proxy.as_ref().and_then(|p| {
            let pspan = self.c.span(p);
            match parse_proxy(&p.value) {
                Ok(proxy) => Some(proxy),
                Err(why) => {
                    self.c.push(
                        Diagnostic::new(
                            Code::DeploymentInvalidAddress,
                            format!("`{}` is not a proxy address", p.value),
                        )
                        .with_label(pspan, why)
                        .with_help(
                            "write address:port: 192.0.2.50:3128, [2001:db8::50]:3128 or proxy.example.net:3128",
                        ),
                    );
                    None
                }
            }
        });
        let aws = raw.aws.as_ref().and_then(|a| self.check_aws(a, true, span));
        Placement {
            addresses,
            kubernetes: None,
            aws,
            proxy,
            host: None,
            span,
        }
    }

    pub(super) fn check_kubernetes(&mut self, raw: &RawKubernetes) -> Option<KubernetesSelector> {
        let mut ok = true;
        let ns_span = self.c.span(&raw.namespace);
        if !is_dns_label(&raw.namespace.value) {
            ok = false;
            self.c.push(
                Diagnostic::new(
                    Code::DeploymentInvalidPlacement,
                    format!(
                        "`{}` is not a Kubernetes namespace name",
                        raw.namespace.value
                    ),
                )
                .with_label(ns_span, "not a DNS label")
                .with_help(
                    "namespaces are lowercase letters, digits and '-', at most 63 characters",
                ),
            );
        }
        let mut labels = BTreeMap::new();
        for (key, value) in &raw.pod_selector.0 {
            let key_span = self.c.span(key);
            let value_span = self.c.span(value);
            if !is_label_key(&key.value) {
                ok = false;
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a Kubernetes label key", key.value),
                    )
                    .with_label(key_span, "invalid label key")
                    .with_help("a label key is [prefix/]name, the name at most 63 characters of letters, digits, '-', '_' and '.'"),
                );
            }
            if !is_label_value(&value.value) {
                ok = false;
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a Kubernetes label value", value.value),
                    )
                    .with_label(value_span, "invalid label value")
                    .with_help("a label value is at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
                );
            }
            labels.insert(key.value.clone(), value.value.clone());
        }
        ok.then(|| KubernetesSelector {
            namespace: raw.namespace.value.clone(),
            pod_selector: labels,
        })
    }

    pub(super) fn check_aws(
        &mut self,
        raw: &RawAws,
        external: bool,
        span: Span,
    ) -> Option<AwsPlacement> {
        let mut ok = true;
        if let Some(sg) = &raw.security_group {
            let sg_span = self.c.span(sg);
            if external {
                ok = false;
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        "a security group belongs to a component, not an external endpoint",
                    )
                    .with_label(sg_span, "here")
                    .with_help("give the endpoint `addresses:` or `aws: {prefix_list: pl-…}`"),
                );
            } else if sg.value.is_empty()
                || sg.value.len() > 255
                || sg.value.starts_with("sg-")
                || !sg.value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            {
                ok = false;
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a security group name", sg.value),
                    )
                    .with_label(sg_span, "invalid security group name")
                    .with_help("give the group's name (1 to 255 ASCII characters, not starting with `sg-`); the aws target creates it"),
                );
            }
        }
        if let Some(pl) = &raw.prefix_list {
            let pl_span = self.c.span(pl);
            let valid = pl.value.strip_prefix("pl-").is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !valid {
                ok = false;
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a prefix list id", pl.value),
                    )
                    .with_label(pl_span, "expected pl- and hex digits")
                    .with_help("e.g. pl-63a5400a (`aws ec2 describe-managed-prefix-lists`)"),
                );
            }
        }
        if raw.security_group.is_none() && raw.prefix_list.is_none() {
            ok = false;
            self.c.push(
                Diagnostic::new(Code::DeploymentInvalidPlacement, "empty `aws:` placement")
                    .with_label(span, "aws placement without a value")
                    .with_help(if external {
                        "give `prefix_list: pl-…`, or remove `aws:`"
                    } else {
                        "give `security_group: <name>`, or remove `aws:`"
                    }),
            );
        }
        ok.then(|| AwsPlacement {
            security_group: raw.security_group.as_ref().map(|s| s.value.clone()),
            prefix_list: raw.prefix_list.as_ref().map(|s| s.value.clone()),
        })
    }
}

/// Whether `text` can name a host: it becomes a file name (`<host>.nft`)
/// and a set name, so no '/' and no leading dot.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '+')
        })
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_label_key(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && is_valid_host(prefix)
                && !prefix.contains('*')
                && is_label_name(name)
        }
        None => is_label_name(text),
    }
}

fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_label_name(text)
}
