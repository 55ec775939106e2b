//! The kind of a component (part of the system, something the operator
//! provides, the outside world) from the words of its name. Keyword tables
//! are data; a name that matches none keeps the kind the caller gives.

use crate::build::Kind;

/// Words that make a name the outside world.
const EXTERNAL_NAMES: &[&str] = &[
    "outside",
    "internet",
    "the internet",
    "world",
    "anywhere",
    "public",
    "external",
    "clients",
    "client",
    "users",
    "end users",
    "end-users",
    "browsers",
    "customers",
    "everyone",
    "operators",
    "administrators",
    "admins",
    "developers",
    "end user",
    "browser",
];

/// Words that make any name containing them the outside world.
const EXTERNAL_WORDS: &[&str] = &["workstation", "workstations", "laptop", "laptops"];

/// Words that make a name something the operator provides.
const DEPENDENCY_WORDS: &[&str] = &[
    "database",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "redis",
    "memcached",
    "storage",
    "bucket",
    "buckets",
    "s3",
    "queue",
    "sqs",
    "kafka",
    "rabbitmq",
    "broker",
    "registry",
    "registries",
    "load balancer",
    "load balancers",
    "dns",
    "ntp",
    "ldap",
    "active directory",
    "smtp",
    "mail",
    "vcs",
    "kms",
    "vault",
    "proxy",
    "identity provider",
    "idp",
    "nfs",
    "prometheus",
    "syslog",
    "siem",
    "hsm",
    "zookeeper",
    "object storage",
];

/// The kind a name suggests, or `default`.
pub(crate) fn kind_of(name: &str, default: Kind) -> Kind {
    let lower = name.to_lowercase();
    if EXTERNAL_NAMES.contains(&lower.trim())
        || EXTERNAL_WORDS
            .iter()
            .any(|w| crate::text::contains_words(&lower, w))
    {
        return Kind::External;
    }
    if default == Kind::Dependency
        || DEPENDENCY_WORDS
            .iter()
            .any(|w| crate::text::contains_words(&lower, w))
    {
        return Kind::Dependency;
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of("Outside", Kind::System), Kind::External);
        assert_eq!(kind_of("Postgres", Kind::System), Kind::Dependency);
        assert_eq!(kind_of("Web DB", Kind::System), Kind::System);
        assert_eq!(kind_of("Load balancers", Kind::System), Kind::Dependency);
        assert_eq!(kind_of("Prometheus", Kind::System), Kind::Dependency);
        assert_eq!(kind_of("Syslog server", Kind::System), Kind::Dependency);
        assert_eq!(kind_of("Admin workstation", Kind::System), Kind::External);
    }
}
