//! Problems found in a user's YAML file, each pinned to `file:line:column`.
//!
//! Config and policy loading collect every problem they can find instead of stopping at the
//! first one, so `jitgate check` can print them all in one go. A [`Diagnostic`] is one such
//! problem; [`Diagnostics`] is the list that loading returns as its error.

use std::fmt;
use std::path::{Path, PathBuf};

use marked_yaml::{FromYamlError, LoadError, Span};

/// One problem in one file, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found while loading a set of files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
}

/// Collects problems for one file while its validated form is being built.
pub struct FileReport<'a> {
    file: &'a Path,
    found: Vec<Diagnostic>,
}

impl<'a> FileReport<'a> {
    pub fn new(file: &'a Path) -> Self {
        Self {
            file,
            found: Vec::new(),
        }
    }

    /// Records a problem at the start of `span` (line 1, column 1 when the span is unknown).
    pub fn at(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = span
            .start()
            .map(|m| (m.line(), m.column()))
            .unwrap_or((1, 1));
        self.at_line(line, column, message);
    }

    pub fn at_line(&mut self, line: usize, column: usize, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Finishes the report: `Ok(value)` when nothing was wrong.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(Diagnostics(self.found))
        }
    }

    /// The problems found so far, as an error (for paths that cannot build a value).
    pub fn into_diagnostics(self) -> Diagnostics {
        Diagnostics(self.found)
    }

    pub fn has_problems(&self) -> bool {
        !self.found.is_empty()
    }
}

/// Parses YAML text into a raw file type, turning parser and shape errors into a diagnostic.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, Diagnostics> {
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    marked_yaml::from_yaml_with_options(0, text, options).map_err(|e| {
        let (mut line, mut column, mut message) = describe_yaml_error(&e);
        if let FromYamlError::FromNode(node_error) = &e {
            if let Some(path) = node_error.path() {
                // Point at the offending key or value rather than the enclosing mapping.
                let options = marked_yaml::LoaderOptions::default();
                if let Some((l, c)) = marked_yaml::parse_yaml_with_options(0, text, options)
                    .ok()
                    .and_then(|root| locate(&root, path))
                {
                    (line, column) = (l, c);
                }
                message = format!("{message} (at `{path}`)");
            }
        }
        Diagnostics(vec![Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }])
    })
}

fn describe_yaml_error(e: &FromYamlError) -> (usize, usize, String) {
    match e {
        FromYamlError::ParseYaml(load) => {
            let marker = match load {
                LoadError::TopLevelMustBeMapping(m)
                | LoadError::TopLevelMustBeSequence(m)
                | LoadError::UnexpectedAnchor(m)
                | LoadError::MappingKeyMustBeScalar(m)
                | LoadError::UnexpectedTag(m)
                | LoadError::ScanError(m, _) => Some(*m),
                LoadError::DuplicateKey(inner) => inner.key.span().start().copied(),
            };
            let (line, column) = marker.map(|m| (m.line(), m.column())).unwrap_or((1, 1));
            let message = match load {
                LoadError::TopLevelMustBeMapping(_) => {
                    "the file must be a YAML mapping (key: value lines)".to_string()
                }
                LoadError::DuplicateKey(inner) => {
                    format!("key `{}` appears twice", inner.key.as_str())
                }
                LoadError::ScanError(_, scan) => format!("invalid YAML: {}", scan.info()),
                other => format!("invalid YAML: {}", strip_marker(&other.to_string())),
            };
            (line, column, message)
        }
        FromYamlError::FromNode(node) => {
            let (line, column) = node
                .start_mark()
                .map(|m| (m.line(), m.column()))
                .unwrap_or((1, 1));
            let message = match &**node {
                marked_yaml::Error::UnknownFieldError(field, expected, _) => format!(
                    "unknown key `{field}`, expected one of: {}",
                    expected.join(", ")
                ),
                marked_yaml::Error::NotBoolean(_) => "expected true or false".to_string(),
                marked_yaml::Error::IntegerParseFailure(e, _) => {
                    format!("expected a whole number: {e}")
                }
                marked_yaml::Error::FloatParseFailure(e, _) => format!("expected a number: {e}"),
                marked_yaml::Error::Other(msg, _) => msg.clone(),
            };
            (line, column, message)
        }
    }
}

/// Finds the node a serde path such as `routes[1].allow` names; returns its line and column.
/// For a mapping key, the key's own position is returned.
fn locate(root: &marked_yaml::Node, path: &str) -> Option<(usize, usize)> {
    let mut node = root;
    let mut position = None;
    for segment in path.split('.') {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            let mapping = node.as_mapping()?;
            let (k, v) = mapping.iter().find(|(k, _)| k.as_str() == key)?;
            position = k.span().start().map(|m| (m.line(), m.column()));
            node = v;
        }
        for index in indexes
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
        {
            node = node.as_sequence()?.get_node(index)?;
            position = node.span().start().map(|m| (m.line(), m.column()));
        }
    }
    position
}

/// Loader messages start with their own `line:col:` marker; we print ours instead.
fn strip_marker(s: &str) -> &str {
    s.split_once(": ").map(|(_, rest)| rest).unwrap_or(s)
}
