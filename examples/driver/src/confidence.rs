//! 95% confidence intervals for comparing two samples: the difference of means (Welch's t)
//! and the difference of a quantile (percentile bootstrap), plus Student's t quantiles for
//! small samples such as per-run figures.

use serde::Serialize;

/// Mean and sample standard deviation (0 for fewer than two samples).
pub fn mean_stddev(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// An estimate with a 95% confidence interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether the interval excludes zero (the difference is significant at 5%).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:+.2} [{:+.2}, {:+.2}]", self.estimate, self.low, self.high)
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%).
pub fn t_975(df: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    if df.is_nan() || df < 1.0 {
        return f64::NAN;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = df.floor() as usize;
    if whole <= TABLE.len() {
        TABLE[whole - 1]
    } else {
        // Cornish-Fisher: z + (z^3 + z) / (4 df); within 0.003 of the table at df = 30.
        1.959_964 + 2.373 / df
    }
}

/// 95% interval for the mean of `xs` (Student's t).
pub fn mean_ci(xs: &[f64]) -> Interval {
    let (mean, sd) = mean_stddev(xs);
    if xs.len() < 2 {
        return Interval { estimate: mean, low: f64::NAN, high: f64::NAN };
    }
    let half = t_975(xs.len() as f64 - 1.0) * sd / (xs.len() as f64).sqrt();
    Interval { estimate: mean, low: mean - half, high: mean + half }
}

/// 95% interval for `mean(a) - mean(b)` (Welch's t, unequal variances).
///
/// ```
/// use lumenize_driver::confidence::welch_mean_diff;
/// let d = welch_mean_diff(&[10.0, 11.0, 12.0, 11.0], &[1.0, 2.0, 1.5, 1.5]);
/// assert!((d.estimate - 9.5).abs() < 1e-9 && d.low > 8.0 && d.high < 11.0);
/// ```
pub fn welch_mean_diff(a: &[f64], b: &[f64]) -> Interval {
    let (ma, sa) = mean_stddev(a);
    let (mb, sb) = mean_stddev(b);
    let estimate = ma - mb;
    if a.len() < 2 || b.len() < 2 {
        return Interval { estimate, low: f64::NAN, high: f64::NAN };
    }
    let (va, vb) = (sa * sa / a.len() as f64, sb * sb / b.len() as f64);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return Interval { estimate, low: estimate, high: estimate };
    }
    let df = (va + vb).powi(2) / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    let half = t_975(df) * se;
    Interval { estimate, low: estimate - half, high: estimate + half }
}

/// 95% percentile-bootstrap interval for `quantile(a, q) - quantile(b, q)` with `resamples`
/// resamples from a fixed seed (so a report is reproducible from its samples).
///
/// ```
/// use lumenize_driver::confidence::bootstrap_quantile_diff;
/// let a: Vec<f64> = (0..200).map(|i| 10.0 + (i % 7) as f64).collect();
/// let b: Vec<f64> = (0..200).map(|i| 2.0 + (i % 5) as f64).collect();
/// let d = bootstrap_quantile_diff(&a, &b, 0.5, 300);
/// assert!(d.low <= d.estimate && d.estimate <= d.high && d.low > 5.0);
/// ```
pub fn bootstrap_quantile_diff(a: &[f64], b: &[f64], q: f64, resamples: usize) -> Interval {
    if a.is_empty() || b.is_empty() {
        return Interval { estimate: f64::NAN, low: f64::NAN, high: f64::NAN };
    }
    let estimate = quantile(&mut a.to_vec(), q) - quantile(&mut b.to_vec(), q);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for x in &mut ra {
            *x = a[rng.below(a.len())];
        }
        for x in &mut rb {
            *x = b[rng.below(b.len())];
        }
        diffs.push(quantile(&mut ra, q) - quantile(&mut rb, q));
    }
    if diffs.is_empty() {
        return Interval { estimate, low: f64::NAN, high: f64::NAN };
    }
    let low = quantile(&mut diffs.clone(), 0.025);
    let high = quantile(&mut diffs, 0.975);
    Interval { estimate, low, high }
}

/// The `q` quantile (nearest rank) of `xs`, reordering it. `xs` must not be empty.
fn quantile(xs: &mut [f64], q: f64) -> f64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
    let (_, value, _) = xs.select_nth_unstable_by(rank, f64::total_cmp);
    *value
}

/// A small deterministic generator for the bootstrap (xorshift64*).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(x) * n as u128) >> 64) as usize;
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert!((t_975(1.0) - 12.706).abs() < 1e-9);
        assert!((t_975(30.0) - 2.042).abs() < 1e-9);
        assert!((t_975(31.0) - 2.036).abs() < 0.01);
        assert!((t_975(1e9) - 1.96).abs() < 0.001);
        assert!(t_975(0.5).is_nan());
        let same = welch_mean_diff(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert!(same.low < 0.0 && same.high > 0.0 && !same.excludes_zero());
        let m = mean_ci(&[10.0, 12.0, 11.0, 13.0, 9.0]);
        assert!(m.low < 11.0 && m.high > 11.0);
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(mean_stddev(&[2.0, 4.0]), (3.0, 2f64.sqrt()));
    }

    #[test]
    fn bootstrap_covers_a_known_shift() {
        let a: Vec<f64> = (0..500).map(|i| 5.0 + f64::from(i % 50) / 10.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 2.0).collect();
        let d = bootstrap_quantile_diff(&a, &b, 0.5, 200);
        assert!((d.estimate - 2.0).abs() < 1e-9);
        assert!(d.low <= 2.0 && d.high >= 2.0, "{d:?}");
        assert!(bootstrap_quantile_diff(&[], &b, 0.5, 10).estimate.is_nan());
    }
}
