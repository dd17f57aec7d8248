//! Summary statistics of a sample: count, mean, standard deviation and percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles are read from an HDR histogram at this resolution: 1 µs for samples in
/// milliseconds, with 3 significant digits.
const UNITS_PER_SAMPLE_UNIT: f64 = 1_000.0;

/// Count, mean, standard deviation, extremes and percentiles of a sample (in the sample's
/// unit, milliseconds throughout the driver).
///
/// Mean, standard deviation, min and max are exact; percentiles come from an HDR histogram
/// (`hdrhistogram`, 3 significant digits, so within 0.1%). Negative samples count as 0 in
/// the percentiles (experiments report early events separately).
///
/// ```
/// use lumenize_driver::stats::Summary;
/// let s = Summary::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
/// assert_eq!(s.count, 5);
/// assert_eq!(s.mean, 22.0);
/// assert!((s.p50 - 3.0).abs() < 0.01);
/// assert_eq!(s.max, 100.0);
/// assert!(Summary::of(&[]).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation (population).
    pub stddev: f64,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`, or `None` if there are none.
    #[must_use]
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        for x in samples {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let v = (x * UNITS_PER_SAMPLE_UNIT).round().max(0.0) as u64;
            // The histogram grows to fit (auto-resize); `saturating_record` would clamp instead.
            if histogram.record(v).is_err() {
                histogram.saturating_record(v);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let at = |q: f64| histogram.value_at_quantile(q) as f64 / UNITS_PER_SAMPLE_UNIT;
        Some(Summary {
            count: samples.len() as u64,
            mean,
            stddev: variance.sqrt(),
            min: samples.iter().copied().fold(f64::INFINITY, f64::min),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}
