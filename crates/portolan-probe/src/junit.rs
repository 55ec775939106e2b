//! The one JUnit writer: the probe report, the lab and `portolan check` map
//! their results to [`Case`]s and [`Suite`]s, and [`report`] turns them into
//! a [`quick_junit::Report`], so that every JUnit file Portolan writes has
//! the same structure (a failure carries the outcome as its type, a skip
//! carries why).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// How one test case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not: a `<failure>` with a message and a type.
    Failure {
        /// One line for a person.
        message: String,
        /// The outcome's short name (`refused`, `open`, ...).
        kind: String,
    },
    /// It was not counted: a `<skipped>` with why.
    Skipped {
        /// Why it was skipped.
        message: String,
    },
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The test case's name.
    pub name: String,
    /// Its class name (`portolan.tcp`, `portolan.lab.api`, ...).
    pub classname: String,
    /// How long it took, when it ran.
    pub time: Option<Duration>,
    /// How it ended.
    pub status: Status,
}

/// One test suite: a name and its cases, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The suite's name.
    pub name: String,
    /// Its cases.
    pub cases: Vec<Case>,
}

/// The JUnit report named `name` with these suites, in order.
pub fn report(name: &str, suites: impl IntoIterator<Item = Suite>) -> Report {
    let mut report = Report::new(name);
    report.add_test_suites(suites.into_iter().map(|suite| {
        let mut junit = TestSuite::new(suite.name);
        junit.add_test_cases(suite.cases.into_iter().map(test_case));
        junit
    }));
    report
}

fn test_case(case: Case) -> TestCase {
    let status = match case.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Failure { message, kind } => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(message).set_type(kind);
            status
        }
        Status::Skipped { message } => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(message);
            status
        }
    };
    let mut junit = TestCase::new(case.name, status);
    junit.set_classname(case.classname);
    if let Some(time) = case.time {
        junit.set_time(time);
    }
    junit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_carries_messages_types_and_times() {
        let case = |name: &str, status| Case {
            name: name.to_owned(),
            classname: "portolan.tcp".to_owned(),
            time: Some(Duration::from_millis(2)),
            status,
        };
        let suites = [
            Suite {
                name: "a".to_owned(),
                cases: vec![
                    case("ok", Status::Pass),
                    case(
                        "bad",
                        Status::Failure {
                            message: "tcp 198.18.0.2:5432: refused".to_owned(),
                            kind: "refused".to_owned(),
                        },
                    ),
                ],
            },
            Suite {
                name: "b".to_owned(),
                cases: vec![Case {
                    time: None,
                    ..case(
                        "later",
                        Status::Skipped {
                            message: "not probed: a name".to_owned(),
                        },
                    )
                }],
            },
        ];
        let report = report("portolan", suites);
        assert_eq!((report.tests, report.failures), (3, 1));
        let xml = report.to_string().expect("serialises");
        assert!(
            xml.contains(r#"<testcase name="bad" classname="portolan.tcp" time="0.002">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="tcp 198.18.0.2:5432: refused" type="refused"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="later" classname="portolan.tcp">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="not probed: a name"/>"#),
            "{xml}"
        );
        let names: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
