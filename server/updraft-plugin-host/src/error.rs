//! The crate's error type: what can go wrong loading, compiling or validating a plugin.

use std::path::PathBuf;

/// An error of the plugin host. Task failures are not errors: they are [`crate::TaskOutcome`]s.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The wasmtime engine could not be created from the configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The bytes are not a WebAssembly component (or not a valid one).
    #[error("{origin}: not a valid WebAssembly component: {reason}")]
    Malformed { origin: String, reason: String },
    /// A valid component, but not an Updraft operator.
    #[error(
        "{origin}: not an Updraft operator: it does not implement the world `updraft:operator/operator@0.1.0` ({reason}); build it with updraft-plugin-sdk"
    )]
    WrongWorld { origin: String, reason: String },
    /// The component's `describe` trapped, timed out or returned nonsense.
    #[error("{origin}: describe() failed: {reason}")]
    Describe { origin: String, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `updraft plugins new` could not create the crate.
    #[error("{0}")]
    Scaffold(String),
    /// The plugin store (the metadata database) failed or holds something unusable.
    #[error("plugin store: {0}")]
    Store(String),
    /// The host's configuration is unusable (for example an unreadable CA file).
    #[error("{0}")]
    Config(String),
    /// No plugin of that name is loaded.
    #[error("no operator named \"{0}\" is installed; `updraft plugins list` shows the installed ones")]
    UnknownOperator(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
