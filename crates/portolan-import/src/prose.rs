//! Network requirements stated in sentences rather than tables or lists.

use crate::build::{Dest, Draft, Kind, PItem};
use crate::conditions::{if_you_phrases, CondText};
use crate::report::WarningCode;
use std::collections::HashSet;

use crate::bullets::sentence_bullet;
use crate::clauses::{clauses, Party};
use crate::context::Scope;
use crate::page::Reader;
use crate::ports::Proto;
use crate::text::{contains_words, find_ci, plain};

impl Reader<'_, '_> {
    /// Sentences of sections that held no table or list, which state a
    /// network requirement in prose: an image pull under a registry heading
    /// becomes a flow (see `image_pull`); any other is not imported, and
    /// said so.
    /// Sentences that say who connects to whom on which port ("the brokers
    /// connect to the ZooKeeper ensemble on 2181", "Grafana serves its web
    /// interface on port 3000"): flows, with the sentence as the purpose.
    /// A sentence without a port, or whose party is a pronoun ("connects to
    /// it"), gives none. Returns the lines read.
    pub(crate) fn prose_flows(&mut self) -> HashSet<usize> {
        let mut read = HashSet::new();
        for (section, paragraphs) in self.doc.prose.iter().enumerate() {
            let notation = self.doc.section_heading[section]
                .as_ref()
                .is_some_and(|h| NOTATION_HEADINGS.iter().any(|w| contains_words(&h.text, w)));
            if notation {
                continue;
            }
            for (line, text) in paragraphs {
                let p = plain(text);
                let mut offset = 0;
                for sentence in p.split(". ") {
                    let at = *line + p[..offset].matches('\n').count();
                    offset += sentence.len() + 2;
                    let flat = sentence.replace('\n', " ");
                    let said: Vec<_> = clauses(&flat)
                        .into_iter()
                        .filter(|s| {
                            !s.ports.is_empty()
                                && !s.to.is_empty()
                                && !s.from.iter().chain(&s.to).any(|p| *p == Party::Subject)
                        })
                        .collect();
                    for s in said {
                        let mut b = sentence_bullet(&flat);
                        b.ports = s.ports.clone();
                        b.said = vec![s];
                        if self.bullet_flows(&b, at, &[], &Scope::default()) > 0 {
                            read.insert(at);
                        }
                    }
                }
            }
        }
        read
    }

    pub(crate) fn prose_warnings(&mut self, read: &HashSet<usize>) {
        const TRIGGERS: &[&str] = &[
            "needs to be able to",
            "need to be able to",
            "must be able to",
            "needs access to",
            "need access to",
            "requires access to",
            "require access to",
            "must reach",
            "needs to reach",
            "need to reach",
            "must be allowed",
            "must be open",
            "should be open",
            "must allow",
            "needs to connect",
            "must connect",
        ];
        for (section, paragraphs) in self.doc.prose.iter().enumerate() {
            if self.used_sections.contains(&section) {
                continue;
            }
            for (line, text) in paragraphs {
                for (offset_line, raw_line) in (*line..).zip(text.split('\n')) {
                    if read.contains(&offset_line) {
                        continue;
                    }
                    for sentence in plain(raw_line).split(". ") {
                        let lower = sentence.to_lowercase();
                        if TRIGGERS.iter().any(|t| lower.contains(t)) {
                            let heading_text = self.doc.section_heading[section]
                                .as_ref()
                                .map(|h| h.text.clone());
                            if let Some(pull) = heading_text
                                .as_deref()
                                .and_then(|h| image_pull(h, sentence))
                            {
                                self.image_pull_flow(&pull, offset_line);
                                continue;
                            }
                            let heading = heading_text
                                .map(|h| format!(" under \"{h}\""))
                                .unwrap_or_default();
                            self.b.warn(
                                offset_line,
                                WarningCode::ProseNotImported,
                                format!("prose{heading} states a network requirement that was not imported (only tables and lists are read): \"{}\"", sentence.trim().trim_end_matches('.')),
                            );
                        }
                    }
                }
            }
        }
    }

    /// The flow an image-pull sentence states: from the container runtime
    /// to the registry the section is about.
    pub(crate) fn image_pull_flow(&mut self, pull: &ImagePull, line: usize) {
        let from = self.b.component("Container runtime", Kind::Dependency);
        if self.b.components[from].description.is_none() {
            self.b.components[from].description =
                Some("The nodes or container runtime that pull the container images.".to_owned());
        }
        let to = self.b.component(&pull.registry, Kind::Dependency);
        let mut draft = Draft::new(from, Dest::Comp(to), Proto::Tcp, line);
        draft.ports = vec![PItem::Range(443, 443)];
        if !pull.features.is_empty() {
            draft.when = self.b.condition(&CondText::Phrases(pull.features.clone()));
            draft.required = false;
        }
        draft.name = Some(pull.name.clone());
        draft.purpose = Some(format!("{}.", pull.sentence));
        draft.guesses = vec![
            "port not stated on the page; HTTPS (443) assumed, as container registries are served over HTTPS".to_owned(),
        ];
        self.b.add(draft);
    }
}

/// Headings of sections that explain a notation rather than state flows.
pub(crate) const NOTATION_HEADINGS: &[&str] = &["legend", "notation", "how to read", "key"];

/// A sentence under a registry heading saying something must be able to
/// pull an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImagePull {
    /// The registry: the section heading.
    pub(crate) registry: String,
    /// The flow's name: the image phrase ("Backend image").
    pub(crate) name: String,
    /// The sentence, as the flow's purpose.
    pub(crate) sentence: String,
    /// Feature phrases of a leading "If you …" clause; empty when unconditional.
    pub(crate) features: Vec<String>,
}

/// Phrases that state a need to pull, as prose words it.
pub(crate) const PULL_TRIGGERS: &[&str] = &[
    "needs to be able to pull ",
    "need to be able to pull ",
    "must be able to pull ",
    "should be able to pull ",
    "needs access to pull ",
    "need access to pull ",
    "requires access to pull ",
    "require access to pull ",
];

/// Words that open the subject of a main clause after an "If you …" clause
/// that has no comma ("If you deploy … operator the Kubernetes cluster will
/// need …").
pub(crate) const SUBJECT_OPENERS: &[&str] = &[" the ", " your ", " each ", " every ", " all "];

/// Reads an image-pull requirement: only under a heading about registries,
/// only with a pull trigger followed within a few words by "image(s)", and
/// only unconditional or conditional on a leading "If you …" clause; any
/// other sentence stays a warning.
pub(crate) fn image_pull(heading: &str, sentence: &str) -> Option<ImagePull> {
    // Only a section about registries says where the images come from.
    find_ci(heading, "registr")?;
    let sentence = sentence.trim().trim_end_matches('.').trim();
    let (pos, trigger) = PULL_TRIGGERS
        .iter()
        .filter_map(|t| find_ci(sentence, t).map(|p| (p, *t)))
        .min_by_key(|(p, _)| *p)?;
    let object = &sentence[pos + trigger.len()..];
    let mut phrase = Vec::new();
    let mut found = false;
    for w in object.split_whitespace().take(6) {
        let bare = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-');
        let lower = bare.to_lowercase();
        if phrase.is_empty()
            && matches!(
                lower.as_str(),
                "the" | "a" | "an" | "our" | "your" | "its" | "their" | "all" | "any"
            )
        {
            continue;
        }
        if bare.is_empty() || bare.len() != w.len() && !(lower == "image" || lower == "images") {
            // Punctuation ends the object before an image was named.
            return None;
        }
        phrase.push(bare.to_owned());
        if lower == "image" || lower == "images" {
            found = true;
            break;
        }
    }
    if !found {
        return None;
    }
    let mut name = phrase.join(" ");
    if let Some(first) = name.chars().next() {
        name.replace_range(..first.len_utf8(), &first.to_uppercase().to_string());
    }
    let head = &sentence[..pos];
    let features = if head.len() >= 7 && head[..7].eq_ignore_ascii_case("if you ") {
        let clause_end = match head.find(',') {
            Some(p) => p,
            None => SUBJECT_OPENERS
                .iter()
                .filter_map(|o| find_ci(&head[7..], o).map(|p| p + 7))
                .max()?,
        };
        let features = if_you_phrases(&head[7..clause_end]);
        if features.is_empty() {
            return None;
        }
        features
    } else if contains_words(head, "if") || contains_words(head, "when") {
        // A condition this rule cannot place: leave the sentence to the warning.
        return None;
    } else {
        Vec::new()
    };
    Some(ImagePull {
        registry: heading.trim().to_owned(),
        name,
        sentence: sentence.to_owned(),
        features,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_reads_only_pulls_of_images_under_a_registry_heading() {
        let pull = image_pull(
            "Container registries",
            "If you deploy your workers using our Kubernetes operator the Kubernetes cluster will need to be able to pull the launcher image as well.",
        )
        .unwrap();
        assert_eq!(pull.registry, "Container registries");
        assert_eq!(pull.name, "Launcher image");
        assert_eq!(pull.features, vec!["Kubernetes operator".to_owned()]);
        let pull = image_pull(
            "Container registries",
            "The environment you deploy Spacelift into (for example a Kubernetes or ECS cluster) needs to be able to pull the backend image",
        )
        .unwrap();
        assert_eq!(pull.name, "Backend image");
        assert!(pull.features.is_empty());
        assert_eq!(
            image_pull("Image registry", "Your nodes must be able to pull images.")
                .unwrap()
                .name,
            "Images"
        );
        // Not a registry section, not an image, not a pull, or a condition
        // the rule cannot place: left to the warning.
        assert!(image_pull(
            "Server",
            "The server must be able to pull the backend image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to pull updates from the mirror"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to reach the registry image store"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "When scanning is on, nodes must be able to pull the scanner image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "If you like nodes must be able to pull the scanner image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to pull the charts, then the image"
        )
        .is_none());
    }
}
