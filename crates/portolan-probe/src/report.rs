//! Results as JSON and JUnit XML.

use quick_junit::Report;

use crate::junit::{self, Case, Status, Suite};

use crate::types::ProbeResult;
use crate::Error;

/// The results as pretty-printed JSON (an array of [`ProbeResult`]).
pub fn to_json(results: &[ProbeResult]) -> Result<String, Error> {
    Ok(serde_json::to_string_pretty(results)?)
}

/// Results read back from [`to_json`]'s output.
pub fn from_json(json: &str) -> Result<Vec<ProbeResult>, Error> {
    Ok(serde_json::from_str(json)?)
}

/// A JUnit report with one test suite named `name` and one test case per
/// probe: passes are successes, everything else (open-or-filtered included)
/// is a failure whose message gives the outcome.
pub fn junit_report(name: &str, results: &[ProbeResult]) -> Report {
    let cases = results.iter().map(|result| Case {
        name: result.spec.id.clone(),
        classname: format!("portolan.{}", result.spec.protocol.name()),
        time: Some(result.outcome.elapsed),
        status: if result.is_pass() {
            Status::Pass
        } else {
            Status::Failure {
                message: result.summary(),
                kind: result.outcome.class.name().to_owned(),
            }
        },
    });
    let suite = Suite {
        name: name.to_owned(),
        cases: cases.collect(),
    };
    junit::report(name, [suite])
}

/// [`junit_report`] as XML text.
pub fn junit_xml(name: &str, results: &[ProbeResult]) -> Result<String, Error> {
    Ok(junit_report(name, results).to_string()?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::types::*;

    fn result(id: &str, protocol: Protocol, class: OutcomeClass) -> ProbeResult {
        ProbeResult {
            spec: ProbeSpec::new(
                id,
                "127.0.0.1:5432"
                    .parse::<std::net::SocketAddr>()
                    .expect("addr"),
                protocol,
            )
            .with_source_port(8112),
            outcome: ProbeOutcome {
                class,
                os_error: Some("Connection refused (os error 111)".into()),
                elapsed: Duration::from_nanos(1_234_567),
                attempts: 2,
            },
            details: ProbeDetails {
                resolved: vec!["127.0.0.1".parse().expect("ip")],
                dns_time: Some(Duration::from_micros(830)),
                tls: Some(TlsDetails {
                    version: Some("TLSv1.3".into()),
                    verified: true,
                    ..TlsDetails::default()
                }),
                ..ProbeDetails::default()
            },
        }
    }

    fn all_classes() -> Vec<ProbeResult> {
        let token = "t0k".to_owned();
        [
            OutcomeClass::Open,
            OutcomeClass::Refused,
            OutcomeClass::Filtered,
            OutcomeClass::Unreachable,
            OutcomeClass::OpenOrFiltered,
            OutcomeClass::DnsFailed,
            OutcomeClass::TlsFailed {
                reason: "certificate not trusted".into(),
            },
            OutcomeClass::ProxyFailed {
                reason: "403".into(),
            },
            OutcomeClass::LocalError,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, class)| {
            let protocol = match i % 5 {
                0 => Protocol::Tcp,
                1 => Protocol::Udp {
                    mode: UdpMode::PortolanListener {
                        token: token.clone(),
                    },
                },
                2 => Protocol::Tls {
                    sni: Some("db.example".into()),
                },
                3 => Protocol::Multicast {
                    token: token.clone(),
                },
                _ => Protocol::IcmpEcho {
                    token: token.clone(),
                },
            };
            result(&format!("flow-{i}"), protocol, class)
        })
        .collect()
    }

    #[test]
    fn json_round_trips_every_class() {
        let results = all_classes();
        let json = to_json(&results).expect("serialises");
        assert_eq!(from_json(&json).expect("parses"), results);
        assert!(json.contains(r#""class": "open_or_filtered""#), "{json}");
        assert!(json.contains(r#""elapsed_ms": 1.234567"#), "{json}");
        let host = ProbeSpec::new(
            "h",
            Target::host("db.example", 5432),
            Protocol::Udp {
                mode: UdpMode::RealService {
                    payload: vec![1, 2],
                },
            },
        );
        let json = serde_json::to_string(&host).expect("serialises");
        assert_eq!(
            json,
            r#"{"id":"h","target":{"host":{"name":"db.example","port":5432}},"protocol":{"kind":"udp","mode":{"kind":"real_service","payload":[1,2]}}}"#
        );
        assert_eq!(
            serde_json::from_str::<ProbeSpec>(&json).expect("parses"),
            host
        );
    }

    #[test]
    fn only_open_passes() {
        for result in all_classes() {
            assert_eq!(
                result.is_pass(),
                result.outcome.class == OutcomeClass::Open,
                "{:?}",
                result.outcome.class
            );
        }
    }

    #[test]
    fn junit_has_one_case_per_probe_and_fails_all_but_open() {
        let results = all_classes();
        let report = junit_report("portolan check", &results);
        assert_eq!(report.tests, results.len());
        assert_eq!(report.failures, results.len() - 1);
        let xml = junit_xml("portolan check", &results).expect("serialises");
        assert!(
            xml.contains(r#"<testcase name="flow-0" classname="portolan.tcp""#),
            "{xml}"
        );
        assert!(
            xml.contains("tcp 127.0.0.1:5432: dns_failed after 2 attempt(s)"),
            "{xml}"
        );
        // An ICMP echo has no port: the message names the host alone.
        assert!(
            xml.contains("icmp 127.0.0.1: open_or_filtered after 2 attempt(s)"),
            "{xml}"
        );
    }
}
