//! `lumenize-driver`: runs the workspace's experiments against a worker, local or deployed.
//!
//! ```sh
//! cargo run --release -p lumenize-driver                       # every experiment, default matrix, local
//! cargo run --release -p lumenize-driver -- alarms-robustness  # one experiment
//! cargo run --release -p lumenize-driver -- alarms-robustness --url https://alarms-robustness.<you>.workers.dev
//! cargo run --release -p lumenize-driver -- call-alarm-delay   # Alarm vs Direct dispatch of lumenize-call
//! cargo run --release -p lumenize-driver -- chaos --duration 10m   # random operations and faults, checked
//! ```
//!
//! The pieces every experiment shares have a module each:
//!
//! | module | what |
//! | --- | --- |
//! | [`target`] | the worker to measure: started locally through lumenize-harness (default), or `--url`; kill and restart for crash runs |
//! | [`http`] | a blocking JSON client with bounded waits (HTTPS for deployed workers) |
//! | [`stats`] | [`Summary`](stats::Summary): count, mean, stddev, p50/p90/p95/p99 (HDR histogram) |
//! | [`progress`] | progress bars on stderr (indicatif), quiet when not a terminal |
//! | [`output`] | `--out`, JSON files, the description of the run, Markdown tables |
//! | [`plot`] | SVG pictures of distributions (plotters, SVG backend only) |
//! | [`cdf`] | SVG pictures of whole distributions: one cumulative curve per sample |
//! | [`confidence`] | 95% confidence intervals of differences (Welch's t, bootstrap) |
//!
//! Each experiment is a module with `Args` (its command-line options), a library entry
//! point that tests can call, and its report: [`alarms_robustness`], [`call_alarm_delay`],
//! [`chaos`].

pub mod alarms_robustness;
pub mod call_alarm_delay;
pub mod chaos;
pub mod cdf;
pub mod confidence;
mod error;
pub mod http;
pub mod output;
pub mod plot;
pub mod progress;
pub mod stats;
pub mod target;

pub use error::{Error, Result};
