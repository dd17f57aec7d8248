//! The driver library's error type.

use std::path::PathBuf;

/// What can go wrong while running an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No HTTP answer came (refused, reset, timed out).
    #[error("no answer from {url}: {reason}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The worker answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// The answer did not have the expected shape.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// The request's URL.
        url: String,
        /// What serde said.
        reason: String,
    },
    /// Building, starting, killing or restarting the local worker failed.
    #[error("local worker: {0:#}")]
    Harness(lumenize_harness::anyhow::Error),
    /// The experiment kills and restarts the runtime, which only a local worker allows.
    #[error("{what} needs the local worker (the driver kills and restarts its runtime): drop --url or leave it out")]
    NeedsLocal {
        /// What needed it.
        what: String,
    },
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Drawing a picture failed.
    #[error("drawing {path}: {reason}")]
    Plot {
        /// The picture's file.
        path: PathBuf,
        /// What plotters said.
        reason: String,
    },
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
