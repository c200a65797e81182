//! Diagnostics: located errors and warnings that a person can act on.
//!
//! Every diagnostic names a file, a line and a column (1-based, in characters) and says what to
//! do. They print in the `path:line:col: severity: message` form that editors and terminals
//! recognise, followed by indented notes (other places involved) and a help line.

use std::fmt;
use std::sync::Arc;

/// A position in a file: 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    /// The first character of a file.
    pub const START: Pos = Pos { line: 1, col: 1 };

    /// A position from its line and column, both counted from 1.
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// A position in a named file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: Arc<str>,
    pub pos: Pos,
}

impl Location {
    /// A position in `file`.
    pub fn new(file: &Arc<str>, pos: Pos) -> Self {
        Location { file: Arc::clone(file), pos }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos.line, self.pos.col)
    }
}

/// How bad a diagnostic is: an error makes the DAG an import error, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about a DAG: where, what, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    /// Other places that take part (the first definition of a duplicate, each step of a cycle).
    pub notes: Vec<(Location, String)>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location`.
    pub fn error(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, location, message: message.into(), notes: Vec::new(), help: None }
    }

    /// A warning at `location`.
    pub fn warning(location: Location, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(location, message) }
    }

    /// Adds what to do about it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a note pointing at another place (the other definition of a duplicate, …).
    pub fn with_note(mut self, location: Location, note: impl Into<String>) -> Self {
        self.notes.push((location, note.into()));
        self
    }

    /// Whether it makes the DAG an import error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.severity, self.message)?;
        for (location, note) in &self.notes {
            write!(f, "\n  note: {location}: {note}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Sorts diagnostics by file and position so that output is stable whatever order the
/// (possibly parallel) loader produced them in.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| (&a.location, b.severity, &a.message).cmp(&(&b.location, a.severity, &b.message)));
}
