//! Whole distributions as an SVG picture: one cumulative distribution curve per sample on a
//! logarithmic axis (plotters' SVG backend, as in [`plot`](crate::plot)). Where
//! [`plot::percentile_rows`](crate::plot::percentile_rows) shows a few percentiles per row,
//! this shows every sample: medians, shoulders and tails of a few samples at once.

use std::path::Path;

use plotters::prelude::*;

use crate::{Error, Result};

/// At most this many points per curve (evenly spaced ranks, plus the last), so files stay
/// small however large the sample.
const MAX_POINTS: usize = 1000;
/// The smallest value drawn (a log axis has no 0).
const FLOOR: f64 = 0.01;
/// Curve colours, in order of the samples.
const COLORS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws the empirical CDF of each labelled sample (x: value in `unit`, log scale; y: the
/// fraction of the sample at or below it) to an SVG file.
///
/// ```no_run
/// let samples = vec![
///     ("raw".to_string(), vec![1.0, 1.2, 3.0]),
///     ("direct".to_string(), vec![4.0, 5.0, 9.0]),
/// ];
/// lumenize_driver::cdf::cdf("latency.svg".as_ref(), "Latency", "ms", &samples)?;
/// # Ok::<(), lumenize_driver::Error>(())
/// ```
///
/// # Errors
/// [`Error::Plot`] when the file cannot be written.
pub fn cdf(path: &Path, title: &str, unit: &str, samples: &[(String, Vec<f64>)]) -> Result<()> {
    draw(path, title, unit, samples).map_err(|e| Error::Plot { path: path.to_owned(), reason: e.to_string() })
}

/// The points of one curve: (value, fraction at or below), thinned to [`MAX_POINTS`].
fn points(sample: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = sample.iter().copied().filter(|v| v.is_finite()).map(|v| v.max(FLOOR)).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let step = n.div_ceil(MAX_POINTS).max(1);
    #[allow(clippy::cast_precision_loss)]
    let fraction = |rank: usize| (rank + 1) as f64 / n as f64;
    sorted.iter().enumerate().filter(|(rank, _)| rank % step == 0 || rank + 1 == n).map(|(rank, v)| (*v, fraction(rank))).collect()
}

fn draw(path: &Path, title: &str, unit: &str, samples: &[(String, Vec<f64>)]) -> Result<(), Box<dyn std::error::Error>> {
    let curves: Vec<(&String, Vec<(f64, f64)>)> = samples.iter().map(|(label, s)| (label, points(s))).collect();
    let values = || curves.iter().flat_map(|(_, p)| p.iter().map(|(v, _)| *v));
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(FLOOR, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo / 1.5, hi * 1.5) } else { (FLOOR, 10.0) };
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(format!("{unit} (log scale)"))
        .y_desc("fraction at or below")
        .x_label_formatter(&|x| format!("{x}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    for (i, (label, points)) in curves.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    // Upper left: no CDF curve reaches there (high fractions at small values), and the labels
    // run to the right, which matters because plotters cannot measure text without a font.
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).margin(16).background_style(WHITE.mix(0.85)).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_thinned_and_end_at_one() {
        let sample: Vec<f64> = (0..5000).map(|i| f64::from(i) / 100.0).collect();
        let p = points(&sample);
        assert!(p.len() <= MAX_POINTS + 1, "{}", p.len());
        assert_eq!(p.last().map(|(_, f)| *f), Some(1.0));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert_eq!(p[0].0, FLOOR, "0 is drawn at the floor");
        assert!(points(&[]).is_empty());
    }

    #[test]
    fn draws_an_svg() {
        let dir = std::env::temp_dir().join(format!("lumenize-cdf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cdf.svg");
        let samples = vec![("a".to_string(), vec![1.0, 2.0, 3.0]), ("b".to_string(), vec![10.0, 20.0]), ("empty".to_string(), vec![])];
        cdf(&path, "test", "ms", &samples).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("\nempty\n") && svg.contains("polyline"), "{svg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
