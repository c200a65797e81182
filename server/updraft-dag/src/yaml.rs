//! A located YAML tree, built from saphyr's event parser with hard bounds.
//!
//! DAG files come from people and from the web editor, so the reader must survive hostile input:
//! the tree is built without recursion (no stack overflow at any depth), nesting is capped, alias
//! expansion is budgeted (an alias bomb is an error, not an out-of-memory), and the file size is
//! capped. Every node keeps its line and column so that later checks can point at it.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScanError, Span};

use crate::diag::{Diagnostic, Location, Pos};

/// Largest DAG or task file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may hold once aliases are expanded.
pub const MAX_NODES: usize = 1_000_000;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A YAML value with the positions of its parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar with its text; `plain` is false when it was quoted or a block scalar, which
    /// makes `"true"` a string and `true` a boolean.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order. Keys are always scalars (checked when the tree is built).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar, quoted or not.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short name of the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Converts the node to JSON, resolving plain scalars by the YAML 1.2 core schema
    /// (booleans, integers, floats, null); quoted scalars stay strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        // Iterative post-order walk: nodes may be nested up to MAX_DEPTH, which recursion
        // would handle, but keeping every tree walk iterative makes that bound irrelevant.
        enum Step<'a> {
            Visit(&'a Node),
            BuildSeq(usize),
            BuildMap(Vec<String>),
        }
        let mut stack = vec![Step::Visit(self)];
        let mut out: Vec<J> = Vec::new();
        while let Some(step) = stack.pop() {
            match step {
                Step::Visit(node) => match &node.value {
                    Value::Scalar { text, plain } => out.push(scalar_json(text, *plain)),
                    Value::Seq(items) => {
                        stack.push(Step::BuildSeq(items.len()));
                        stack.extend(items.iter().rev().map(Step::Visit));
                    }
                    Value::Map(entries) => {
                        let keys = entries.iter().map(|(k, _)| k.as_str().unwrap_or_default().to_owned()).collect();
                        stack.push(Step::BuildMap(keys));
                        stack.extend(entries.iter().rev().map(|(_, v)| Step::Visit(v)));
                    }
                },
                Step::BuildSeq(n) => {
                    let items = out.split_off(out.len() - n);
                    out.push(J::Array(items));
                }
                Step::BuildMap(keys) => {
                    let values = out.split_off(out.len() - keys.len());
                    out.push(J::Object(keys.into_iter().zip(values).collect()));
                }
            }
        }
        out.pop().unwrap_or(J::Null)
    }
}

fn scalar_json(text: &str, plain: bool) -> serde_json::Value {
    use serde_json::Value as J;
    if !plain {
        return J::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => J::Null,
        "true" | "True" | "TRUE" => J::Bool(true),
        "false" | "False" | "FALSE" => J::Bool(false),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                J::from(i)
            } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite())
                && text.bytes().any(|b| b.is_ascii_digit())
            {
                J::from(f)
            } else {
                J::String(text.to_owned())
            }
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(
        u32::try_from(span.start.line()).unwrap_or(u32::MAX),
        u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
    )
}

enum Frame {
    Seq { pos: Pos, anchor: usize, first_node: usize, items: Vec<Node> },
    Map { pos: Pos, anchor: usize, first_node: usize, entries: Vec<(Node, Node)>, key: Option<Node> },
}

/// Parses one YAML document into a located tree. An empty document is a null node.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Node, Diagnostic> {
    let at = |pos: Pos| Location::new(file, pos);
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            at(Pos::START),
            format!(
                "file is {:.1} MiB; DAG files are limited to {} MiB",
                text.len() as f64 / (1024.0 * 1024.0),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        )
        .with_help("split the DAG into a folder: a dag.yaml and one small YAML file per task"));
    }
    let scan_error = |e: ScanError| {
        let marker = e.marker();
        Diagnostic::error(
            at(Pos::new(
                u32::try_from(marker.line()).unwrap_or(u32::MAX),
                u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
            )),
            format!("invalid YAML: {}", e.info()),
        )
        .with_help("check the indentation and quoting around this place")
    };

    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored subtrees with their expanded node counts, for aliases.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::default();
    let mut nodes = 0usize;
    let mut documents = 0usize;
    let mut root: Option<Node> = None;

    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(scan_error)?;
        let pos = pos_of(&span);
        // A finished node: (node, anchor id, count of nodes in it).
        let finished: Option<(Node, usize, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        at(pos),
                        "a second YAML document starts here; a DAG file holds exactly one",
                    )
                    .with_help("remove the `---` line, or move the second document to a file of its own"));
                }
                None
            }
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                let plain = matches!(style, saphyr_parser::ScalarStyle::Plain);
                Some((Node { pos, value: Value::Scalar { text: text.into_owned(), plain } }, anchor, 1))
            }
            Event::Alias(id) => {
                let Some((node, count)) = anchors.get(&id) else {
                    return Err(Diagnostic::error(at(pos), "alias refers to an unknown anchor"));
                };
                nodes += count;
                if nodes > MAX_NODES {
                    return Err(Diagnostic::error(
                        at(pos),
                        format!("YAML aliases expand to more than {MAX_NODES} values (an alias bomb?)"),
                    )
                    .with_help("write the values out, or use fewer nested aliases"));
                }
                Some((Node { pos, value: node.value.clone() }, 0, *count))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::error(
                        at(pos),
                        format!("YAML is nested more than {MAX_DEPTH} levels deep"),
                    )
                    .with_help("DAG files need only a few levels; flatten this value"));
                }
                nodes += 1;
                let first_node = nodes;
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq { pos, anchor, first_node, items: Vec::new() }
                } else {
                    Frame::Map { pos, anchor, first_node, entries: Vec::new(), key: None }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, first_node, items }) => {
                    Some((Node { pos, value: Value::Seq(items) }, anchor, nodes - first_node + 1))
                }
                Some(Frame::Map { pos, anchor, first_node, entries, .. }) => {
                    Some((Node { pos, value: Value::Map(entries) }, anchor, nodes - first_node + 1))
                }
                None => None,
            },
        };
        if nodes > MAX_NODES {
            return Err(Diagnostic::error(at(pos), format!("file holds more than {MAX_NODES} YAML values"))
                .with_help("split the DAG into a folder: a dag.yaml and one YAML file per task"));
        }
        let Some((node, anchor, count)) = finished else { continue };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), count));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let Some(name) = node.as_str() else {
                        return Err(Diagnostic::error(
                            at(node.pos),
                            format!("a mapping key must be a plain name, found {}", node.kind()),
                        ));
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.as_str() == Some(name)) {
                        return Err(Diagnostic::error(at(node.pos), format!("duplicate key `{name}`"))
                            .with_note(at(first.pos), "first defined here")
                            .with_help("keep one of the two"));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node { pos: Pos::START, value: Value::Scalar { text: String::new(), plain: true } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<str> {
        Arc::from("t.yaml")
    }

    #[test]
    fn keeps_positions() {
        let node = parse(&file(), "a: 1\nb:\n  - x\n  - 'y'\n").expect("valid");
        let Value::Map(entries) = &node.value else { panic!("map expected") };
        assert_eq!(entries[1].0.pos, Pos::new(2, 1));
        let Value::Seq(items) = &entries[1].1.value else { panic!("seq expected") };
        assert_eq!(items[1].pos, Pos::new(4, 5));
        assert_eq!(node.to_json(), serde_json::json!({"a": 1, "b": ["x", "y"]}));
    }

    #[test]
    fn alias_bomb_is_an_error() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&file(), &text).expect_err("bomb");
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // Flow nesting: saphyr's own recursion limit stops it.
        let err = parse(&file(), &"[".repeat(100_000)).expect_err("deep");
        assert!(err.message.contains("recursion limit"), "{err}");
        // Block nesting: our limit stops it.
        let text: String = (0..100).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
        let err = parse(&file(), &text).expect_err("deep");
        assert_eq!(err.message, "YAML is nested more than 64 levels deep", "{err}");
    }

    #[test]
    fn oversized_file_is_an_error() {
        let text = "#".repeat(MAX_FILE_BYTES + 1);
        let err = parse(&file(), &text).expect_err("big");
        assert!(err.message.starts_with("file is 8.0 MiB; DAG files are limited to 8 MiB"), "{err}");
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let err = parse(&file(), "id: a\nsql: x\nid: b\n").expect_err("dup");
        assert_eq!(
            err.to_string(),
            "t.yaml:3:1: error: duplicate key `id`\n  note: t.yaml:1:1: first defined here\n  help: keep one of the two"
        );
    }

    #[test]
    fn second_document_is_an_error() {
        let err = parse(&file(), "a: 1\n---\nb: 2\n").expect_err("two docs");
        assert!(err.message.contains("second YAML document"), "{err}");
    }

    #[test]
    fn syntax_error_is_located() {
        let err = parse(&file(), "a: [1, 2\nb: 3\n").expect_err("bad");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert!(err.location.pos.line >= 1);
    }
}
