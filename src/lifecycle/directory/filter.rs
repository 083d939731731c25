//! SCIM filters (RFC 7644 §3.4.2.2): `GET /Users?filter=...` from the IdP, and the value
//! paths `attr[filter][.subAttr]` that PATCH uses to pick elements of a multi-valued
//! attribute. The `scim_v2` crate parses the text (its grammar has the RFC's precedence,
//! `not > and > or`, and value paths); this file turns its tree into ours, with attribute
//! paths resolved once, and evaluates it on a resource's JSON.
//!
//! Value paths live here rather than in `attr_path` because they hold a filter: `attr_path`
//! stays the lower file that both this one and `patch` use.

use serde_json::{Map, Number, Value};

use super::attr_path::{AttrPath, AttrPathError};
use scim_v2::filter as parsed;

/// Why a filter or PATCH path did not parse. The message is short enough for the `detail`
/// of a SCIM error; the HTTP layer answers 400 `invalidFilter` (or `invalidPath` in PATCH).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter syntax: {0}")]
    Syntax(String),
    #[error(transparent)]
    Path(#[from] AttrPathError),
}

/// A parsed filter, ready to match resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

/// A value path: the elements of a multi-valued attribute that match a filter, and
/// optionally one sub-attribute of each (`emails[type eq "work"].value`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValuePath {
    pub attr: AttrPath,
    filter: Node,
    pub sub_attr: Option<String>,
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath` or `valuePath [subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchPath {
    Attr(AttrPath),
    Value(ValuePath),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Literal),
    /// `attr[inner]`: some element of `attr` matches `inner`, whose paths are relative to
    /// the element.
    ValuePath(AttrPath, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Number(Number),
    Null,
}

/// Parses a filter such as `userName eq "ann"` or
/// `emails[type eq "work" and value co "@x.io"] or not (active eq true)`.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    check_length(text)?;
    let tree: parsed::Filter = match text.parse() {
        Ok(tree) => tree,
        Err(error) => match lift_sub_attributes(text) {
            Some(lifted) => lifted.parse().map_err(|_| syntax(error))?,
            None => return Err(syntax(error)),
        },
    };
    Ok(Filter {
        root: Node::from_filter(&tree)?,
    })
}

/// `emails[type eq "work"].value eq "a@x.io"` is how IdPs and the issue this service was
/// built for write "the work email is a@x.io", but RFC 7644's grammar (and so the parser)
/// has no sub-attribute after a value filter. It means exactly
/// `emails[type eq "work" and value eq "a@x.io"]`, which the grammar has: rewrite to that.
/// `None` when the text has no such comparison.
fn lift_sub_attributes(text: &str) -> Option<String> {
    static PATTERN: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let pattern = PATTERN
        .get_or_init(|| {
            regex::Regex::new(
                r#"(?i)\[([^\[\]"]*(?:"(?:[^"\\]|\\.)*"[^\[\]"]*)*)\]\.([A-Za-z][\w$-]*)\s+(?:(pr)\b|(eq|ne|co|sw|ew|gt|ge|lt|le)\s+("(?:[^"\\]|\\.)*"|true\b|false\b|null\b|-?[0-9][0-9.eE+-]*))"#,
            )
            .ok()
        })
        .as_ref()?;
    if !pattern.is_match(text) {
        return None;
    }
    Some(
        pattern
            .replace_all(text, |c: &regex::Captures<'_>| {
                let (inner, sub) = (&c[1], &c[2]);
                match (c.get(3), c.get(4), c.get(5)) {
                    (Some(_), _, _) => format!("[({inner}) and {sub} pr]"),
                    (None, Some(op), Some(value)) => {
                        format!("[({inner}) and {sub} {} {}]", op.as_str(), value.as_str())
                    }
                    _ => c[0].to_string(),
                }
            })
            .into_owned(),
    )
}

/// The longest filter or PATCH path accepted. Parsing, matching and dropping a filter
/// recurse once per `and`/`or`, so an unbounded one (a request head may be 1 MiB) could
/// exhaust a worker's stack and take the whole process down.
pub const MAX_FILTER_LEN: usize = 4_096;

fn check_length(text: &str) -> Result<(), FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError::Syntax(format!(
            "a filter may be at most {MAX_FILTER_LEN} bytes"
        )));
    }
    Ok(())
}

/// Parses a PATCH `path`, e.g. `members[value eq "id"]` or `emails[type eq "work"].value`.
pub fn parse_patch_path(text: &str) -> Result<PatchPath, FilterError> {
    check_length(text)?;
    let tree: parsed::PatchPath = text.parse().map_err(syntax)?;
    Ok(match tree {
        parsed::PatchPath::Attr(path) => PatchPath::Attr(attr_path(&path)?),
        parsed::PatchPath::Value(value_path) => PatchPath::Value(ValuePath {
            attr: attr_path(&value_path.attr)?,
            filter: Node::from_val_filter(&value_path.filter)?,
            sub_attr: value_path.sub_attr,
        }),
    })
}

/// The parser's message on one line: lalrpop puts the expected tokens on a second one.
fn syntax(error: parsed::ParseError) -> FilterError {
    FilterError::Syntax(error.to_string().replace('\n', "; "))
}

fn attr_path(path: &parsed::AttrPath) -> Result<AttrPath, FilterError> {
    // The crate splits at the last colon like we do; its Display puts the parts back.
    Ok(AttrPath::parse(&path.to_string())?)
}

impl Filter {
    /// Whether `resource` (a User or Group as stored) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        self.root.matches(resource, None)
    }

    /// `Some("ann")` when the filter is exactly `userName eq "ann"`, the query Okta and
    /// Entra send before creating a user; the store can answer it with an index lookup.
    /// userName is case-insensitive, so that lookup must be too.
    pub fn user_name_eq(&self) -> Option<&str> {
        match &self.root {
            Node::Compare(path, CompareOp::Eq, Literal::Str(value)) if path.is_core("userName") => {
                Some(value)
            }
            _ => None,
        }
    }
}

impl ValuePath {
    /// Whether one element of the multi-valued attribute matches the bracketed filter.
    pub fn element_matches(&self, element: &Value) -> bool {
        self.filter.matches(element, Some(&self.attr.name))
    }

    /// For a filter made only of `eq` comparisons joined by `and` (`type eq "work"`), the
    /// element those comparisons describe, `{"type": "work"}`. PATCH creates it when an add
    /// or replace matches nothing, as Entra expects for `emails[type eq "work"].value`.
    pub fn eq_template(&self) -> Option<Map<String, Value>> {
        let mut element = Map::new();
        self.filter.eq_members(&mut element)?;
        Some(element)
    }
}

impl Node {
    fn from_filter(tree: &parsed::Filter) -> Result<Node, FilterError> {
        Ok(match tree {
            parsed::Filter::Attr(exp) => Node::from_attr_exp(exp)?,
            parsed::Filter::ValuePath(vp) => Node::ValuePath(
                attr_path(&vp.attr)?,
                Box::new(Node::from_val_filter(&vp.filter)?),
            ),
            parsed::Filter::Not(inner) => Node::Not(Box::new(Node::from_filter(inner)?)),
            parsed::Filter::And(l, r) => Node::And(
                Box::new(Node::from_filter(l)?),
                Box::new(Node::from_filter(r)?),
            ),
            parsed::Filter::Or(l, r) => Node::Or(
                Box::new(Node::from_filter(l)?),
                Box::new(Node::from_filter(r)?),
            ),
        })
    }

    fn from_val_filter(tree: &parsed::ValFilter) -> Result<Node, FilterError> {
        Ok(match tree {
            parsed::ValFilter::Attr(exp) => Node::from_attr_exp(exp)?,
            parsed::ValFilter::Not(inner) => Node::Not(Box::new(Node::from_val_filter(inner)?)),
            parsed::ValFilter::And(l, r) => Node::And(
                Box::new(Node::from_val_filter(l)?),
                Box::new(Node::from_val_filter(r)?),
            ),
            parsed::ValFilter::Or(l, r) => Node::Or(
                Box::new(Node::from_val_filter(l)?),
                Box::new(Node::from_val_filter(r)?),
            ),
        })
    }

    fn from_attr_exp(exp: &parsed::AttrExp) -> Result<Node, FilterError> {
        Ok(match exp {
            parsed::AttrExp::Present(path) => Node::Present(attr_path(path)?),
            parsed::AttrExp::Comparison(path, op, value) => {
                let op = match op {
                    parsed::CompareOp::Eq => CompareOp::Eq,
                    parsed::CompareOp::Ne => CompareOp::Ne,
                    parsed::CompareOp::Co => CompareOp::Co,
                    parsed::CompareOp::Sw => CompareOp::Sw,
                    parsed::CompareOp::Ew => CompareOp::Ew,
                    parsed::CompareOp::Gt => CompareOp::Gt,
                    parsed::CompareOp::Ge => CompareOp::Ge,
                    parsed::CompareOp::Lt => CompareOp::Lt,
                    parsed::CompareOp::Le => CompareOp::Le,
                };
                let literal = match value {
                    parsed::CompValue::Str(s) => Literal::Str(s.clone()),
                    parsed::CompValue::True => Literal::Bool(true),
                    parsed::CompValue::False => Literal::Bool(false),
                    parsed::CompValue::Number(n) => Literal::Number(n.clone()),
                    parsed::CompValue::Null => Literal::Null,
                };
                Node::Compare(attr_path(path)?, op, literal)
            }
        })
    }

    /// `parent` is the multi-valued attribute whose element is being matched, if any: it
    /// decides whether `value` is a reference (compared exactly) or, say, an email address.
    fn matches(&self, resource: &Value, parent: Option<&str>) -> bool {
        match self {
            Node::Present(path) => path.values(resource).into_iter().any(is_non_empty),
            Node::Compare(path, op, literal) => {
                let exact = is_case_exact(parent, path);
                path.values(resource)
                    .into_iter()
                    .any(|value| compare(value, *op, literal, exact))
            }
            Node::ValuePath(path, inner) => match path.attribute(resource) {
                Some(Value::Array(elements)) => elements
                    .iter()
                    .any(|element| inner.matches(element, Some(&path.name))),
                Some(single @ Value::Object(_)) => inner.matches(single, Some(&path.name)),
                _ => false,
            },
            Node::And(l, r) => l.matches(resource, parent) && r.matches(resource, parent),
            Node::Or(l, r) => l.matches(resource, parent) || r.matches(resource, parent),
            Node::Not(inner) => !inner.matches(resource, parent),
        }
    }

    fn eq_members(&self, element: &mut Map<String, Value>) -> Option<()> {
        match self {
            Node::Compare(path, CompareOp::Eq, literal)
                if path.extension.is_none() && path.sub_attr.is_none() =>
            {
                let value = match literal {
                    Literal::Str(s) => Value::String(s.clone()),
                    Literal::Bool(b) => Value::Bool(*b),
                    Literal::Number(n) => Value::Number(n.clone()),
                    Literal::Null => return None,
                };
                element.insert(path.name.clone(), value);
                Some(())
            }
            Node::And(l, r) => {
                l.eq_members(element)?;
                r.eq_members(element)
            }
            _ => None,
        }
    }
}

/// RFC 7644 `pr`: the attribute has a non-empty value.
fn is_non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// caseExact attributes (RFC 7643 §7): identifiers, and references to other resources
/// (`members.value`, `groups.value`, `manager.value`, `$ref`), which hold ids.
fn is_case_exact(parent: Option<&str>, path: &AttrPath) -> bool {
    let leaf = path.sub_attr.as_deref().unwrap_or(&path.name);
    let holder = match &path.sub_attr {
        Some(_) => Some(path.name.as_str()),
        None => parent,
    };
    let is_reference = holder.is_some_and(|h| {
        ["members", "groups", "manager"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(h))
    });
    ["id", "externalId", "$ref"]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(leaf))
        || (is_reference && leaf.eq_ignore_ascii_case("value"))
}

/// One stored value against the literal. A multi-valued complex attribute compared without
/// a sub-attribute (`emails co "x.io"`) is compared on each element's `value`.
fn compare(value: &Value, op: CompareOp, literal: &Literal, exact: bool) -> bool {
    if let Value::Object(element) = value {
        return super::attr_path::get_ci(element, "value")
            .is_some_and(|inner| !inner.is_object() && compare(inner, op, literal, exact));
    }
    match (value, literal) {
        (Value::String(have), Literal::Str(want)) => {
            let (have, want) = if exact {
                (have.clone(), want.clone())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                CompareOp::Eq => have == want,
                CompareOp::Ne => have != want,
                CompareOp::Co => have.contains(&want),
                CompareOp::Sw => have.starts_with(&want),
                CompareOp::Ew => have.ends_with(&want),
                // DateTime values are ISO 8601 in UTC, so their text order is time order.
                CompareOp::Gt => have > want,
                CompareOp::Ge => have >= want,
                CompareOp::Lt => have < want,
                CompareOp::Le => have <= want,
            }
        }
        (Value::Bool(have), Literal::Bool(want)) => match op {
            CompareOp::Eq => have == want,
            CompareOp::Ne => have != want,
            _ => false,
        },
        (Value::Number(have), Literal::Number(want)) => {
            let (Some(have), Some(want)) = (have.as_f64(), want.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => have == want,
                CompareOp::Ne => have != want,
                CompareOp::Gt => have > want,
                CompareOp::Ge => have >= want,
                CompareOp::Lt => have < want,
                CompareOp::Le => have <= want,
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
            }
        }
        // A present value is never null (nulls are left out as unassigned), so it is
        // `ne null` and never `eq null`; other type mismatches match nothing.
        (_, Literal::Null) => op == CompareOp::Ne,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
