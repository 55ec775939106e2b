//! Ansible inventories (YAML and INI): hosts, their connection variables,
//! their groups (with `children`) and variables.
//!
//! Only what a preflight needs is read: host names, `ansible_host`,
//! `ansible_user`, `ansible_port`, `ansible_ssh_private_key_file`, the
//! groups a host belongs to (directly or through `children`), and
//! `portolan_components`. Variables come from `all`, then parent groups,
//! then child groups, then the host itself (the later wins), as Ansible
//! orders them.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A variable's value: text, or a list of texts (YAML sequences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    /// A scalar, as text.
    Text(String),
    /// A sequence of scalars.
    List(Vec<String>),
}

impl VarValue {
    /// The value as a list: a sequence as is, text split at commas and
    /// white space (`db,cache` or `db cache`).
    pub fn items(&self) -> Vec<String> {
        match self {
            VarValue::List(items) => items.clone(),
            VarValue::Text(text) => text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The value as one text (a list joined with commas).
    pub fn text(&self) -> String {
        match self {
            VarValue::Text(text) => text.clone(),
            VarValue::List(items) => items.join(","),
        }
    }
}

/// One host of an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryHost {
    /// The inventory name of the host.
    pub name: String,
    /// Where it is first defined (1-based line and column).
    pub line: usize,
    /// Column of [`InventoryHost::line`].
    pub column: usize,
    /// Every group it belongs to, directly or through `children`, without
    /// `all`, sorted.
    pub groups: BTreeSet<String>,
    /// Its variables, group variables merged in.
    pub vars: BTreeMap<String, VarValue>,
}

/// An inventory read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The file, for messages.
    pub file: String,
    /// Hosts in the order they first appear.
    pub hosts: Vec<InventoryHost>,
}

/// An inventory that cannot be read: file, line, column, what and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}\n  hint: {hint}")]
pub struct InventoryError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl InventoryError {
    /// An inventory that cannot be used is the user's input.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        portolan_spec::ErrorKind::Input
    }
}

/// What a group holds, before hosts inherit from it.
#[derive(Debug, Default)]
struct Group {
    hosts: Vec<String>,
    children: Vec<String>,
    vars: BTreeMap<String, VarValue>,
}

/// Hosts and groups as read, in order.
#[derive(Debug, Default)]
struct Raw {
    /// Host name → (line, column, own variables).
    hosts: IndexMap<String, (usize, usize, BTreeMap<String, VarValue>)>,
    groups: IndexMap<String, Group>,
}

impl Raw {
    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_owned()).or_default()
    }

    fn host(&mut self, name: &str, line: usize, column: usize) -> &mut BTreeMap<String, VarValue> {
        &mut self
            .hosts
            .entry(name.to_owned())
            .or_insert_with(|| (line, column, BTreeMap::new()))
            .2
    }

    /// Resolves membership through `children` and merges variables.
    fn finish(self, file: &str) -> Result<Inventory, InventoryError> {
        // Depth of each group below `all` (shortest path), for variable order.
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, group) in &self.groups {
            for child in &group.children {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(name.as_str());
            }
        }
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for (name, (line, column, own)) in &self.hosts {
            let mut member: BTreeMap<String, usize> = BTreeMap::new();
            let direct: Vec<&str> = self
                .groups
                .iter()
                .filter(|(_, g)| g.hosts.iter().any(|h| h == name))
                .map(|(n, _)| n.as_str())
                .collect();
            // Walk up from each direct group; depth counts down from the host.
            let mut stack: Vec<(&str, usize)> = direct.iter().map(|g| (*g, 0)).collect();
            let mut steps = 0usize;
            while let Some((group, depth)) = stack.pop() {
                steps += 1;
                if steps > 100_000 {
                    break; // a cycle of children: membership is already complete
                }
                let known = member.get(group).copied();
                if known.is_some_and(|d| d <= depth) {
                    continue;
                }
                member.insert(group.to_owned(), depth);
                for parent in parents.get(group).into_iter().flatten() {
                    stack.push((parent, depth + 1));
                }
            }
            let mut vars = BTreeMap::new();
            if let Some(all) = self.groups.get("all") {
                vars.extend(all.vars.clone());
            }
            // Farthest ancestors first, so that nearer groups override them.
            let mut ordered: Vec<(&String, &usize)> = member.iter().collect();
            ordered.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (group, _) in ordered {
                if let Some(g) = self.groups.get(group.as_str()) {
                    vars.extend(g.vars.clone());
                }
            }
            vars.extend(own.clone());
            member.remove("all");
            hosts.push(InventoryHost {
                name: name.clone(),
                line: *line,
                column: *column,
                groups: member.into_keys().collect(),
                vars,
            });
        }
        Ok(Inventory {
            file: file.to_owned(),
            hosts,
        })
    }
}

/// Reads an inventory: YAML when the first significant character opens a
/// mapping (`name:`) or the file ends in `.yml`/`.yaml`, INI otherwise.
pub fn read_inventory(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let yaml_name = file.ends_with(".yml") || file.ends_with(".yaml");
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && l != &"---");
    let looks_ini = first.is_some_and(|l| l.starts_with('[') || !l.contains(':'));
    if yaml_name || !looks_ini {
        read_yaml(file, text)
    } else {
        read_ini(file, text)
    }
}

fn error(file: &str, line: usize, column: usize, message: String, hint: &str) -> InventoryError {
    InventoryError {
        file: file.to_owned(),
        line,
        column,
        message,
        hint: hint.to_owned(),
    }
}

// ---------------------------------------------------------------- INI

/// Splits an INI host line into words, honouring single and double quotes.
fn words(line: &str) -> Result<Vec<(usize, String)>, usize> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                start.get_or_insert(i);
                quote = Some(c);
            }
            (None, c) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    out.push((s, std::mem::take(&mut current)));
                }
            }
            (None, '#') if start.is_none() => break,
            (None, c) => {
                start.get_or_insert(i);
                current.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err(start.unwrap_or(0));
    }
    if let Some(s) = start {
        out.push((s, current));
    }
    Ok(out)
}

/// Expands one numeric range pattern `web[01:03]` (Ansible's syntax; the
/// width of the start is kept).
fn expand(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_owned()]);
    };
    let close = name[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| "`[` without `]`".to_owned())?;
    let inner = &name[open + 1..close];
    let (from, to) = inner
        .split_once(':')
        .ok_or_else(|| format!("`[{inner}]` is not a range like `[01:20]`"))?;
    let (Ok(a), Ok(b)) = (from.parse::<u32>(), to.parse::<u32>()) else {
        return Err(format!(
            "`[{inner}]`: only numeric ranges (`[1:20]`, `[01:20]`) are supported"
        ));
    };
    if a > b || b - a > 10_000 {
        return Err(format!(
            "`[{inner}]`: the range must go up, by at most 10000"
        ));
    }
    let width = if from.starts_with('0') { from.len() } else { 0 };
    let (head, tail) = (&name[..open], &name[close + 1..]);
    let mut out = Vec::new();
    for n in a..=b {
        for rest in expand(tail)? {
            out.push(format!("{head}{n:0width$}{rest}"));
        }
    }
    Ok(out)
}

fn read_ini(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    enum Section {
        Hosts(String),
        Vars(String),
        Children(String),
    }
    let mut raw = Raw::default();
    let mut section = Section::Hosts("ungrouped".to_owned());
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(error(
                    file,
                    number,
                    indent + 1,
                    format!("`{trimmed}` is not a section header"),
                    "a section is `[group]`, `[group:vars]` or `[group:children]`",
                ));
            };
            section = match name.split_once(':') {
                None => Section::Hosts(name.to_owned()),
                Some((group, "vars")) => Section::Vars(group.to_owned()),
                Some((group, "children")) => Section::Children(group.to_owned()),
                Some((_, other)) => {
                    return Err(error(
                        file,
                        number,
                        indent + 1,
                        format!("unknown section kind `:{other}`"),
                        "a section is `[group]`, `[group:vars]` or `[group:children]`",
                    ))
                }
            };
            let (Section::Hosts(g) | Section::Vars(g) | Section::Children(g)) = &section;
            raw.group(g);
            continue;
        }
        match &section {
            Section::Vars(group) => {
                let Some((key, value)) = trimmed.split_once('=') else {
                    return Err(error(
                        file,
                        number,
                        indent + 1,
                        format!("`{trimmed}` is not `key=value`"),
                        "a `[group:vars]` section holds one `key=value` per line",
                    ));
                };
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                raw.group(group)
                    .vars
                    .insert(key.trim().to_owned(), VarValue::Text(value.to_owned()));
            }
            Section::Children(group) => {
                let child = trimmed.to_owned();
                raw.group(&child);
                raw.group(group).children.push(child);
            }
            Section::Hosts(group) => {
                let parts = words(line).map_err(|at| {
                    error(
                        file,
                        number,
                        at + 1,
                        "unterminated quote".to_owned(),
                        "close the quote of the value",
                    )
                })?;
                let Some(((at, pattern), vars)) = parts.split_first() else {
                    continue;
                };
                let names = expand(pattern)
                    .map_err(|m| error(file, number, at + 1, m, "write the hosts one per line"))?;
                let mut parsed = BTreeMap::new();
                for (col, word) in vars {
                    let Some((key, value)) = word.split_once('=') else {
                        return Err(error(
                            file,
                            number,
                            col + 1,
                            format!("`{word}` is not `key=value`"),
                            "host variables follow the host name as `key=value`",
                        ));
                    };
                    parsed.insert(key.to_owned(), VarValue::Text(value.to_owned()));
                }
                let group = group.clone();
                for name in names {
                    raw.host(&name, number, at + 1).extend(parsed.clone());
                    raw.group(&group).hosts.push(name);
                }
            }
        }
    }
    raw.finish(file)
}

// ---------------------------------------------------------------- YAML

/// Variables of a host or group, as written.
type YamlVars = IndexMap<String, YamlValue>;

#[derive(Debug, Deserialize)]
struct YamlGroup {
    #[serde(default)]
    hosts: Option<IndexMap<Spanned<String>, Option<YamlVars>>>,
    #[serde(default)]
    vars: Option<YamlVars>,
    #[serde(default)]
    children: Option<IndexMap<Spanned<String>, Option<YamlGroup>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YamlValue {
    List(Vec<YamlScalar>),
    Scalar(YamlScalar),
    Other(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YamlScalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl YamlScalar {
    fn text(&self) -> String {
        match self {
            YamlScalar::Text(t) => t.clone(),
            YamlScalar::Int(i) => i.to_string(),
            YamlScalar::Float(f) => f.to_string(),
            YamlScalar::Bool(b) => b.to_string(),
        }
    }
}

fn yaml_vars(vars: &IndexMap<String, YamlValue>) -> BTreeMap<String, VarValue> {
    vars.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                YamlValue::List(items) => {
                    VarValue::List(items.iter().map(YamlScalar::text).collect())
                }
                YamlValue::Scalar(s) => VarValue::Text(s.text()),
                // Mappings and the like mean nothing to a preflight.
                YamlValue::Other(_) => return None,
            };
            Some((k.clone(), value))
        })
        .collect()
}

fn add_yaml_group(raw: &mut Raw, name: &str, group: Option<&YamlGroup>, depth: usize) {
    raw.group(name);
    let Some(group) = group else { return };
    if depth > 64 {
        return;
    }
    if let Some(vars) = &group.vars {
        raw.group(name).vars.extend(yaml_vars(vars));
    }
    for (host, vars) in group.hosts.iter().flatten() {
        let own = vars.as_ref().map(yaml_vars).unwrap_or_default();
        let line = host.referenced.line() as usize;
        let column = host.referenced.column() as usize;
        raw.host(&host.value, line, column).extend(own);
        raw.group(name).hosts.push(host.value.clone());
    }
    for (child, body) in group.children.iter().flatten() {
        raw.group(name).children.push(child.value.clone());
        add_yaml_group(raw, &child.value, body.as_ref(), depth + 1);
    }
}

fn read_yaml(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let top: IndexMap<Spanned<String>, Option<YamlGroup>> =
        serde_saphyr::from_str(text).map_err(|e| {
            let message = e.to_string();
            let (line, column) = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((1, 1));
            error(
                file,
                line,
                column,
                format!("not an Ansible YAML inventory: {}", first_line(&message)),
                "an inventory maps group names to `hosts:`, `vars:` and `children:`",
            )
        })?;
    let mut raw = Raw::default();
    for (name, group) in &top {
        add_yaml_group(&mut raw, &name.value, group.as_ref(), 0);
    }
    raw.finish(file)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "\
# a comment
bastion ansible_host=192.0.2.1

[db]
db[1:2] ansible_user=admin
db3 ansible_host=192.0.2.13 ansible_port=2222 portolan_components=\"db, cache\"

[db:vars]
ansible_user=dba

[backend:children]
db

[backend:vars]
portolan_components=web
";

    fn host<'a>(inv: &'a Inventory, name: &str) -> &'a InventoryHost {
        inv.hosts.iter().find(|h| h.name == name).expect("host")
    }

    #[test]
    fn ini_groups_children_ranges_and_variable_order() {
        let inv = read_inventory("hosts.ini", INI).expect("reads");
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["bastion", "db1", "db2", "db3"]);
        let db1 = host(&inv, "db1");
        assert_eq!(db1.line, 5);
        assert_eq!(
            db1.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["backend", "db"]
        );
        // Host variables beat the group's, the child group's beat the parent's.
        assert_eq!(db1.vars["ansible_user"], VarValue::Text("admin".into()));
        assert_eq!(db1.vars["portolan_components"].items(), ["web"]);
        let db3 = host(&inv, "db3");
        assert_eq!(db3.vars["ansible_user"], VarValue::Text("dba".into()));
        assert_eq!(db3.vars["portolan_components"].items(), ["db", "cache"]);
        assert_eq!(db3.vars["ansible_port"].text(), "2222");
        assert!(host(&inv, "bastion").groups.contains("ungrouped"));
    }

    #[test]
    fn yaml_groups_children_and_lists() {
        let text = "\
all:
  vars:
    ansible_user: root
  hosts:
    bastion:
  children:
    web:
      hosts:
        web1: {ansible_host: 192.0.2.21}
        web2:
          ansible_host: 192.0.2.22
          portolan_components: [web, cache]
    data:
      children:
        db:
          hosts:
            db1: {ansible_port: 2200}
";
        let inv = read_inventory("inventory.yml", text).expect("reads");
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["bastion", "web1", "web2", "db1"]);
        let db1 = host(&inv, "db1");
        assert_eq!(db1.line, 17);
        assert_eq!(
            db1.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["data", "db"]
        );
        assert_eq!(db1.vars["ansible_port"].text(), "2200");
        assert_eq!(db1.vars["ansible_user"].text(), "root");
        assert_eq!(
            host(&inv, "web2").vars["portolan_components"].items(),
            ["web", "cache"]
        );
    }

    #[test]
    fn bad_inventories_name_file_line_and_column() {
        let err = read_inventory("hosts", "[db\nx\n").expect_err("header");
        assert_eq!(err.line, 1);
        assert!(err
            .to_string()
            .starts_with("hosts:1:1: `[db` is not a section header"));
        let err = read_inventory("hosts", "[db]\n  db1 ansible_host\n").expect_err("var");
        assert_eq!((err.line, err.column), (2, 7), "{err}");
        let err = read_inventory("hosts", "[db]\nweb[a:c]\n").expect_err("range");
        assert!(err.to_string().contains("only numeric ranges"), "{err}");
        let err = read_inventory("inv.yaml", "all: [1, 2]\n").expect_err("yaml");
        assert!(err.to_string().starts_with("inv.yaml:1:"), "{err}");
    }
}
