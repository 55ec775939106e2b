//! Who connects to whom, said in a clause: "clients connect to servers",
//! "servers connect to each other", "Clients and other daemons connect
//! here", "client connections to the brokers", "Gossip between servers",
//! "server-to-server cluster traffic", "the brokers connect to the
//! ZooKeeper ensemble on 2181". Shared by bullets, prose and table cells.
//! The word lists are data.

use crate::context::{party_list, party_name};
use crate::text::find_ci;

/// The party a clause calls "it", "here", "each other" refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Party {
    /// A party named in the clause.
    Named(String),
    /// The party the bullet, row or section is about.
    Subject,
}

/// One source → destination statement, with the ports said after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Said {
    pub(crate) from: Vec<Party>,
    pub(crate) to: Vec<Party>,
    /// Ports the clause states after its verb ("on 2888 and 3888").
    pub(crate) ports: Vec<(u16, u16)>,
}

/// Verbs whose subject connects to their object.
const TO_VERBS: &[&str] = &[
    " must be able to connect to ",
    " must be able to reach ",
    " connects out to ",
    " connect out to ",
    " connects to ",
    " connect to ",
    " connecting to ",
    " connections to ",
    " connection to ",
    " talks to ",
    " talk to ",
    " sends data to ",
    " send data to ",
    " send their data to ",
    " sends its data to ",
    " send events to ",
    " sends events to ",
    " query ",
    " queries ",
    " reach ",
    " reaches ",
    // Last: "Clients connect here".
    " connect ",
    " connects ",
];

/// Verbs whose subject listens ("Clients and servers serve the HTTP API here").
const LISTEN_VERBS: &[&str] = &[" serve ", " serves ", " listen on ", " listens on "];

/// Words saying a group talks among its own members.
const AMONG: &[&str] = &[
    " among themselves",
    " with each other",
    " with one another",
    " between themselves",
];
/// Verbs of a group talking among itself.
const SELF_VERBS: &[&str] = &[
    " replicate",
    " communicate",
    " gossip",
    " exchange",
    " synchronise",
    " synchronize",
    " sync",
    " talk",
];

/// Objects that are the subject of the bullet or row.
const HERE: &[&str] = &["here", "it", "this port", "there", "them", "to it"];
/// Objects that are the clause's own subject.
const EACH_OTHER: &[&str] = &["each other", "one another", "themselves"];
/// Words that make traffic flow between members of the subject itself.
pub(crate) const INTERNAL: &[&str] = &[
    "inter-node",
    "internode",
    "node-to-node",
    "server-to-server",
    "peer-to-peer",
    "broker-to-broker",
    "intra-cluster",
    "replication",
    "cluster communication",
];

/// Words a party "between" which traffic flows must contain: members of
/// one cluster ("between cluster nodes", "between the servers"), not
/// places ("between datacenters").
const MEMBERS: &[&str] = &[
    "node",
    "nodes",
    "server",
    "servers",
    "member",
    "members",
    "peer",
    "peers",
    "broker",
    "brokers",
    "instance",
    "instances",
    "agent",
    "agents",
    "replica",
    "replicas",
];

/// Ports standing alone in a text: "on 2888 and 3888", "port 8500", "6800-7300".
pub(crate) fn ports_in(text: &str) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    // Tokens are bounded by anything but letters, digits and '-', so "S3"
    // and "msgr2" are no ports.
    for token in text.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        let token = token.trim_matches('-');
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_digit() || c == '-') {
            continue;
        }
        if let Some(r) = crate::ports::port_or_range(token) {
            if r.0 > 0 && !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

fn object_party(object: &str) -> Vec<Party> {
    let o = object.trim().to_lowercase();
    if HERE
        .iter()
        .any(|h| o == *h || o.starts_with(&format!("{h} ")))
    {
        return vec![Party::Subject];
    }
    party_list(object).into_iter().map(Party::Named).collect()
}

/// The readers of a clause, in order: the first that reads it wins. Each
/// gets the clause padded with spaces, and its lower case.
const CLAUSE_READERS: &[fn(&str, &str) -> Option<Said>] = &[
    internal_clause,
    from_clause,
    between_clause,
    listen_clause,
    among_clause,
    verb_clause,
];

/// Words before a verb's subject that are not part of it ("each broker").
const QUANTIFIERS: &[&str] = &["each ", "every ", "Each ", "Every "];

/// Reads one clause.
pub(crate) fn clause(text: &str) -> Option<Said> {
    let text = format!(" {} ", text.trim().trim_end_matches(['.', ':']));
    let lower = text.to_lowercase();
    CLAUSE_READERS.iter().find_map(|read| read(&text, &lower))
}

/// Traffic among the subject's own members ("inter-node", "replication").
fn internal_clause(text: &str, lower: &str) -> Option<Said> {
    INTERNAL.iter().any(|w| lower.contains(w)).then(|| Said {
        from: vec![Party::Subject],
        to: vec![Party::Subject],
        ports: ports_in(text),
    })
}

/// "From users", "or from the reverse proxy when there is one".
fn from_clause(text: &str, lower: &str) -> Option<Said> {
    let trimmed = lower.trim_start();
    let rest = trimmed
        .strip_prefix("from ")
        .or_else(|| trimmed.strip_prefix("or from "))?;
    let start = text.len() - rest.len() - 1;
    let from = party_list(cut_object(&text[start..]));
    if from.is_empty() {
        return None;
    }
    Some(Said {
        from: from.into_iter().map(Party::Named).collect(),
        to: vec![Party::Subject],
        ports: ports_in(text),
    })
}

/// "Gossip between servers": traffic among members of one cluster.
fn between_clause(text: &str, _lower: &str) -> Option<Said> {
    let p = find_ci(text, " between ")?;
    let group = party_list(cut_object(&text[p + 9..]));
    let members = group.iter().all(|g| {
        crate::text::words(&g.to_lowercase())
            .last()
            .is_some_and(|w| MEMBERS.contains(&w.as_str()))
    });
    if group.is_empty() || !members {
        return None;
    }
    let parties: Vec<Party> = group.into_iter().map(Party::Named).collect();
    Some(Said {
        from: parties.clone(),
        to: parties,
        ports: ports_in(&text[p..]),
    })
}

/// "Clients and servers serve the HTTP API here": who listens.
fn listen_clause(text: &str, _lower: &str) -> Option<Said> {
    let (p, verb) = first_verb(text, LISTEN_VERBS)?;
    let listeners = party_list(&text[..p]);
    if listeners.is_empty() || text[..p].split_whitespace().count() > 6 {
        return None;
    }
    Some(Said {
        from: Vec::new(),
        to: listeners.into_iter().map(Party::Named).collect(),
        ports: ports_in(&text[p + verb.len()..]),
    })
}

/// "Brokers also replicate partitions among themselves".
fn among_clause(text: &str, _lower: &str) -> Option<Said> {
    let end = AMONG.iter().find_map(|a| find_ci(text, a))?;
    let head = &text[..end];
    let cut = SELF_VERBS
        .iter()
        .filter_map(|v| find_ci(head, v))
        .min()
        .unwrap_or(0);
    let group = party_list(head[..cut].trim().trim_end_matches(" also"));
    if cut == 0 || group.is_empty() || head[..cut].split_whitespace().count() > 4 {
        return None;
    }
    let parties: Vec<Party> = group.into_iter().map(Party::Named).collect();
    Some(Said {
        from: parties.clone(),
        to: parties,
        ports: ports_in(&text[end..]),
    })
}

/// The first of `verbs` in `text`: where, and which.
fn first_verb(text: &str, verbs: &[&'static str]) -> Option<(usize, &'static str)> {
    verbs
        .iter()
        .filter_map(|v| find_ci(text, v).map(|p| (p, *v)))
        .min_by_key(|(p, _)| *p)
}

/// "Clients connect to servers", "the brokers connect to the ZooKeeper
/// ensemble on 2181": a subject, a verb of connecting, an object.
fn verb_clause(text: &str, _lower: &str) -> Option<Said> {
    let (p, verb) = first_verb(text, TO_VERBS)?;
    let from = verb_subject(text[..p].trim(), verb)?;
    let rest = &text[p + verb.len()..];
    let object = cut_object(rest);
    let o = object.trim().to_lowercase();
    let to = if EACH_OTHER.iter().any(|e| o.starts_with(e)) {
        from.clone()
    } else if o.is_empty() || o == "here" {
        vec![Party::Subject]
    } else {
        object_party(object)
    };
    if to.is_empty() {
        return None;
    }
    Some(Said {
        from,
        to,
        ports: ports_in(rest),
    })
}

/// The parties that connect: the last phrase before the verb ("Only in
/// clusters that use ZooKeeper, the brokers connect to …"), at most six
/// words.
fn verb_subject(whole: &str, verb: &str) -> Option<Vec<Party>> {
    let head = if whole.split_whitespace().count() <= 6 {
        whole
    } else {
        whole.rsplit([',', ';', ':']).next().unwrap_or("").trim()
    };
    let head = QUANTIFIERS
        .iter()
        .find_map(|a| head.strip_prefix(a))
        .unwrap_or(head);
    if head.split_whitespace().count() > 6 {
        return None;
    }
    let mut names = party_list(head);
    // "client connections to the brokers": the clients connect.
    if verb.contains("connection") {
        for n in &mut names {
            if !n.contains(' ') && !n.ends_with('s') {
                n.push('s');
            }
        }
    }
    let from: Vec<Party> = names.into_iter().map(Party::Named).collect();
    (!from.is_empty()).then_some(from)
}

/// The object of a verb: up to "on", "over", "at", "through", a comma or
/// a parenthesis.
fn cut_object(rest: &str) -> &str {
    let mut end = rest.len();
    for stop in [
        " on ",
        " over ",
        " at ",
        " through ",
        " via ",
        " using ",
        " for ",
        " when ",
        " if ",
        " only ",
        ",",
        "(",
        ";",
        ":",
        " and to ",
    ] {
        if let Some(p) = find_ci(rest, stop) {
            end = end.min(p);
        }
    }
    &rest[..end]
}

/// The clauses of a text: split at sentence ends, semicolons, colons and
/// ", and "; "X connects to A on 1 and to B on 2" gives two.
pub(crate) fn clauses(text: &str) -> Vec<Said> {
    let mut out = Vec::new();
    for part in text
        .split(". ")
        .flat_map(|s| s.split("; "))
        .flat_map(|s| s.split(": "))
    {
        for piece in part.split(", and ").flat_map(|p| p.split(", or ")) {
            let Some(said) = clause(piece) else {
                continue;
            };
            // "… connects to the config servers on 27019 and to the shards on 27018".
            if let Some(p) = find_ci(piece, " and to ") {
                let second = format!(
                    "{} connect to {}",
                    match said.from.first() {
                        Some(Party::Named(n)) => n.clone(),
                        _ => String::new(),
                    },
                    &piece[p + 8..]
                );
                if let (Some(a), Some(b)) = (clause(&piece[..p]), clause(&second)) {
                    out.push(a);
                    out.push(b);
                    continue;
                }
            }
            out.push(said);
        }
    }
    out
}

/// A party's name resolved against the subject: "the server" under
/// "Zabbix server" is the subject itself.
pub(crate) fn same_as_subject(name: &str, subject: &str) -> bool {
    let n = party_name(name).to_lowercase();
    let s = subject.to_lowercase();
    !n.is_empty() && (s == n || s.ends_with(&format!(" {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(v: &[&str]) -> Vec<Party> {
        v.iter().map(|x| Party::Named((*x).to_owned())).collect()
    }

    #[test]
    fn connect_clauses() {
        let c =
            clauses("Internal RPC: clients connect to servers, and servers connect to each other.");
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].from.clone(), c[0].to.clone()),
            (named(&["Clients"]), named(&["Servers"]))
        );
        assert_eq!(
            (c[1].from.clone(), c[1].to.clone()),
            (named(&["Servers"]), named(&["Servers"]))
        );
        let c = clauses("the brokers connect to the ZooKeeper ensemble on 2181");
        assert_eq!(c[0].to, named(&["ZooKeeper ensemble"]));
        assert_eq!(c[0].ports, vec![(2181, 2181)]);
        let c = clauses(
            "Each `mongos` connects to the config servers on 27019 and to the shards on 27018.",
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].to, named(&["Shards"]));
        assert_eq!(c[1].ports, vec![(27018, 27018)]);
        let c = clauses("Clients, agents and operators connect here (HTTPS).");
        assert_eq!(c[0].to, vec![Party::Subject]);
        assert_eq!(c[0].from.len(), 3);
        let c = clauses(
            "Brokers also replicate partitions among themselves over the listener, which is 9092",
        );
        assert_eq!(
            (c[0].from.clone(), c[0].ports.clone()),
            (named(&["Brokers"]), vec![(9092, 9092)])
        );
        let c = clauses("Only in clusters that use ZooKeeper, the brokers connect to the ZooKeeper ensemble on 2181");
        assert_eq!(c[0].from, named(&["Brokers"]));
        assert_eq!(
            ports_in("S3 and Swift on 7480, msgr2, 80/443"),
            vec![(7480, 7480), (80, 80), (443, 443)]
        );
        let c = clauses("Gossip between servers, also across regions");
        assert_eq!(c[0].from, named(&["Servers"]));
        let c = clauses("Clients and servers serve the HTTP API here");
        assert!(c[0].from.is_empty());
        assert_eq!(c[0].to, named(&["Clients", "Servers"]));
        assert_eq!(clauses("Open the ports before you install"), Vec::new());
        assert!(same_as_subject("the server", "Zabbix server"));
        assert!(!same_as_subject("agents", "Zabbix server"));
    }
}
