//! The references of a sanitized document counted before it is kept: `<use>`, `url(#…)` in
//! attributes and style sheets, and markers may refer to one another, and a document whose
//! references go round in a circle or multiply beyond [`MAX_EXPANDED`] elements is refused.

use super::{MAX_DEPTH, MAX_EXPANDED};

/// Refuses a document whose `<use>` references refer to themselves or multiply beyond
/// [`MAX_EXPANDED`] elements.
pub(super) fn check_expansion(document: &roxmltree::Document<'_>) -> Result<(), String> {
    use std::collections::HashMap;
    // The first element with an id is the one it names, as in renderers and browsers.
    let mut ids: HashMap<&str, roxmltree::Node<'_, '_>> = HashMap::new();
    for node in document.descendants() {
        if let Some(id) = node.attribute("id") {
            ids.entry(id).or_insert(node);
        }
    }
    let elements = document.descendants().filter(|n| n.is_element()).count() as u64;
    let mut count = Expansion {
        ids,
        elements,
        sizes: HashMap::new(),
        open: Vec::new(),
        rules: style_rules(document),
    };
    count.of(document.root_element()).map(|_| ())
}

/// Which elements a style sheet's rule applies to, as far as references go.
#[derive(Debug)]
enum Selects<'a> {
    Class(&'a str),
    Id(&'a str),
    Tag(&'a str),
    /// `*`, or a selector this reading does not follow (combinators, attributes, pseudo
    /// classes): taken to apply to every element, so that no reference is missed.
    Every,
}

impl Selects<'_> {
    fn matches(&self, node: roxmltree::Node<'_, '_>) -> bool {
        match self {
            Selects::Class(class) => node
                .attribute("class")
                .is_some_and(|c| c.split_whitespace().any(|c| c == *class)),
            Selects::Id(id) => node.attribute("id") == Some(*id),
            Selects::Tag(tag) => node.tag_name().name() == *tag,
            Selects::Every => true,
        }
    }
}

/// The rules of the document's style sheets that refer to an element (`mask: url(#m)`), each
/// with the ids it refers to: an element a rule applies to refers to them as if it said so
/// itself (a renderer applies them so), which is how a cycle of masks through a style sheet is
/// found.
fn style_rules<'a>(document: &'a roxmltree::Document<'_>) -> Vec<(Selects<'a>, Vec<&'a str>)> {
    let mut rules = Vec::new();
    for style in document
        .descendants()
        .filter(|n| n.tag_name().name() == "style")
    {
        for css in style.children().filter_map(|c| c.text()) {
            for rule in css.split('}') {
                let Some((selectors, declarations)) = rule.split_once('{') else {
                    continue;
                };
                let targets: Vec<&str> = url_ids_at(declarations)
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                for selector in selectors.split(',') {
                    // What a comment left before the selector is no part of it.
                    let selector = selector.rsplit("*/").next().unwrap_or("").trim();
                    let plain = |name: &str| {
                        !name.is_empty()
                            && name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    };
                    let selects = if let Some(class) = selector.strip_prefix('.')
                        && plain(class)
                    {
                        Selects::Class(class)
                    } else if let Some(id) = selector.strip_prefix('#')
                        && plain(id)
                    {
                        Selects::Id(id)
                    } else if plain(selector) {
                        Selects::Tag(selector)
                    } else {
                        Selects::Every
                    };
                    rules.push((selects, targets.clone()));
                }
            }
        }
    }
    rules
}

/// How many elements a document stands for once references are followed: a `<use>` (or any
/// other `href="#id"`) adds its target; a `url(#id)` adds it once per use, a marker once per
/// vertex of its path, and a reference in a style sheet once per element of the document.
struct Expansion<'a, 'i> {
    ids: std::collections::HashMap<&'a str, roxmltree::Node<'a, 'i>>,
    elements: u64,
    sizes: std::collections::HashMap<roxmltree::NodeId, u64>,
    open: Vec<roxmltree::NodeId>,
    rules: Vec<(Selects<'a>, Vec<&'a str>)>,
}

impl<'a, 'i> Expansion<'a, 'i> {
    fn of(&mut self, node: roxmltree::Node<'a, 'i>) -> Result<u64, String> {
        if let Some(size) = self.sizes.get(&node.id()) {
            return Ok(*size);
        }
        if self.open.contains(&node.id()) {
            return Err(
                "an SVG whose references (`<use>`, `url(#…)`) refer to themselves".to_owned(),
            );
        }
        if self.open.len() > MAX_DEPTH {
            return Err(format!(
                "an SVG whose references (`<use>`, `url(#…)`) run more than {MAX_DEPTH} deep"
            ));
        }
        self.open.push(node.id());
        let mut total: u64 = 1;
        for child in node.children().filter(roxmltree::Node::is_element) {
            total = total.saturating_add(self.of(child)?);
        }
        let mut referred = references(node, self.elements);
        if node.is_element() && node.tag_name().name() != "style" {
            for (selects, targets) in &self.rules {
                if selects.matches(node) {
                    referred.extend(targets.iter().map(|id| (*id, 1)));
                }
            }
        }
        for (id, times) in referred {
            if let Some(target) = self.ids.get(id).copied() {
                total = total.saturating_add(self.of(target)?.saturating_mul(times));
            }
        }
        self.open.pop();
        if total > MAX_EXPANDED {
            return Err(format!(
                "an SVG whose references (`<use>`, `url(#…)`, markers) expand to more than {MAX_EXPANDED} elements"
            ));
        }
        self.sizes.insert(node.id(), total);
        Ok(total)
    }
}

/// The ids an element refers to, each with how many times a renderer draws it.
fn references<'a>(node: roxmltree::Node<'a, '_>, elements: u64) -> Vec<(&'a str, u64)> {
    let mut found = Vec::new();
    let vertices = || -> u64 {
        let numbers = ["d", "points"]
            .iter()
            .filter_map(|a| node.attribute(*a))
            .flat_map(|v| v.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')))
            .filter(|t| !t.is_empty())
            .count() as u64;
        (numbers / 2).max(1)
    };
    if node.tag_name().name() == "style" {
        for text in node.children().filter_map(|c| c.text()) {
            found.extend(url_ids_at(text).into_iter().map(|(_, id)| (id, elements)));
        }
        return found;
    }
    for attribute in node.attributes() {
        let value = attribute.value();
        if attribute.name() == "href"
            && let Some(id) = value.trim().strip_prefix('#')
        {
            found.push((id, 1));
        }
        for (at, id) in url_ids_at(value) {
            let property = value[..at].rsplit(';').next().unwrap_or("");
            let marker = attribute.name().starts_with("marker")
                || (attribute.name() == "style" && property.trim_start().starts_with("marker"));
            found.push((id, if marker { vertices() } else { 1 }));
        }
    }
    found
}

/// The ids of every `url(#id)` in a value, with where each starts.
fn url_ids_at(value: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = value[from..].find("url(") {
        let start = from + at;
        let rest = value[start + 4..].trim_start_matches([' ', '"', '\'']);
        if let Some(id) = rest.strip_prefix('#') {
            let end = id.find([')', '"', '\'', ' ']).unwrap_or(id.len());
            found.push((start, &id[..end]));
        }
        from = start + 4;
    }
    found
}
