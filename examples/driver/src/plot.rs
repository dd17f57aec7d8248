//! Pictures of distributions as SVG (plotters' SVG backend, no font or bitmap features).

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::stats::Summary;
use crate::{Error, Result};

/// Draws one row per labelled [`Summary`] on a logarithmic axis: a thin line from min to
/// max, a thick bar from p50 to p99, a dot at p50 and a tick at p99, so distributions of very
/// different sizes compare at a glance. Values under 0.1 are drawn at 0.1.
///
/// ```no_run
/// use lumenize_driver::{plot, stats::Summary};
/// let rows = vec![
///     ("burst-10".to_string(), Summary::of(&[9.0, 10.0, 12.0]).unwrap()),
///     ("burst-1000".to_string(), Summary::of(&[10.0, 40.0, 90.0]).unwrap()),
/// ];
/// plot::percentile_rows("lateness.svg".as_ref(), "Lateness per scenario", "ms", &rows)?;
/// # Ok::<(), lumenize_driver::Error>(())
/// ```
///
/// # Errors
/// [`Error::Plot`] when the file cannot be written.
pub fn percentile_rows(path: &Path, title: &str, unit: &str, rows: &[(String, Summary)]) -> Result<()> {
    draw(path, title, unit, rows).map_err(|e| Error::Plot { path: path.to_owned(), reason: e.to_string() })
}

/// The smallest value drawn (a log axis has no 0).
const FLOOR: f64 = 0.1;
/// Empty rows kept under the data for the legend (4 entries).
const LEGEND_ROWS: u32 = 4;

fn draw(path: &Path, title: &str, unit: &str, rows: &[(String, Summary)]) -> Result<(), Box<dyn std::error::Error>> {
    let n = u32::try_from(rows.len()).unwrap_or(u32::MAX).max(1);
    // Rows are segments top..=LEGEND_ROWS, the first row at the top; the segments below stay
    // empty for the legend, so that it never hides a row. (A segmented range includes its end.)
    let top = n + LEGEND_ROWS - 1;
    let height = 110 + 30 * (top + 1);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let lo = rows.iter().map(|(_, s)| s.min.max(FLOOR)).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().map(|(_, s)| s.max.max(FLOOR)).fold(FLOOR, f64::max);
    // Whole decades, so that the axis always has labelled ticks.
    let (lo, hi) = if lo.is_finite() { (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil())) } else { (FLOOR, 10.0) };
    let hi = if hi <= lo { lo * 10.0 } else { hi };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d((lo..hi).log_scale(), (0..top).into_segmented())?;
    let row_of = |segment: u32| (LEGEND_ROWS..=top).contains(&segment).then(|| (top - segment) as usize);
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(s) => row_of(*s).and_then(|i| rows.get(i)).map(|(l, _)| l.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .y_labels(rows.len() + LEGEND_ROWS as usize)
        .y_label_formatter(&label)
        .x_desc(format!("{unit} (log scale)"))
        .x_label_formatter(&|x| format!("{x}"))
        .disable_y_mesh()
        .draw()?;
    let at = |i: usize| SegmentValue::CenterOf(top - u32::try_from(i).unwrap_or(0).min(n - 1));
    let clamp = |v: f64| v.max(FLOOR);
    let grey = RGBColor(150, 150, 150);
    let bar = RGBColor(70, 130, 200);
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, s))| {
            PathElement::new(vec![(clamp(s.min), at(i)), (clamp(s.max), at(i))], grey.stroke_width(1))
        }))?
        .label("min to max")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, s))| {
            PathElement::new(vec![(clamp(s.p50), at(i)), (clamp(s.p99), at(i))], bar.stroke_width(10))
        }))?
        .label("p50 to p99")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], bar.stroke_width(10)));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, s))| Circle::new((clamp(s.p50), at(i)), 4, BLACK.filled())))?
        .label("p50")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLACK.filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, s))| Cross::new((clamp(s.p99), at(i)), 5, RED.stroke_width(2))))?
        .label("p99")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, RED.stroke_width(2)));
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).position(SeriesLabelPosition::LowerRight).draw()?;
    root.present()?;
    Ok(())
}
