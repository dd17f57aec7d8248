//! The lateness chart: how late the recent starts were, as an inline SVG drawn on the server
//! (no script, no external asset).

use std::fmt::Write;

/// The most starts drawn (the newest).
const BARS: usize = 100;
const WIDTH: usize = 600;
const HEIGHT: usize = 120;

/// An SVG of `lateness` (milliseconds, oldest first; the newest [`BARS`] are drawn) as
/// bars, with the median and maximum in its caption. Only numbers reach it.
pub(crate) fn lateness_svg(lateness: &[i64]) -> String {
    let shown = &lateness[lateness.len().saturating_sub(BARS)..];
    let mut svg = format!(r#"<svg class="chart" viewBox="0 0 {WIDTH} {}" width="{WIDTH}" height="{}" role="img" aria-label="lateness of recent starts">"#, HEIGHT + 20, HEIGHT + 20);
    if shown.is_empty() {
        let _ = write!(svg, r#"<text x="8" y="{}" class="muted">no task started since the board was mounted</text></svg>"#, HEIGHT / 2);
        return svg;
    }
    let mut sorted = shown.to_vec();
    sorted.sort_unstable();
    let max = sorted[sorted.len() - 1].max(1);
    let median = sorted[sorted.len() / 2];
    // Whole pixels.
    let step = WIDTH / BARS;
    let top = i128::from(max);
    let _ = write!(svg, r##"<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#c8ccd4"/>"##);
    for (i, &ms) in shown.iter().enumerate() {
        let h = (i128::from(ms.max(0)) * (HEIGHT as i128 - 4) / top).max(1);
        let _ = write!(svg, r#"<rect x="{}" y="{}" width="{}" height="{h}" class="bar"><title>{ms} ms</title></rect>"#, i * step, HEIGHT as i128 - h, step - 1);
    }
    let _ = write!(svg, r#"<text x="0" y="{}" class="muted">{} starts · median {} · max {}</text></svg>"#, HEIGHT + 16, shown.len(), crate::page::duration(median), crate::page::duration(max));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_at_most_the_newest_bars() {
        let svg = lateness_svg(&(0..250).collect::<Vec<_>>());
        assert_eq!(svg.matches("<rect").count(), BARS);
        assert!(svg.contains("<title>249 ms</title>") && !svg.contains("<title>149 ms</title>"));
        assert!(lateness_svg(&[]).contains("no task started"));
        assert!(lateness_svg(&[-5, i64::MAX]).contains("2 starts"), "any number draws");
    }
}
