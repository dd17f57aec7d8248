//! Progress bars on stderr (indicatif), hidden when stderr is not a terminal or with `--quiet`.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display of one driver run: bars drawn together, lines printed above them.
///
/// ```
/// use lumenize_driver::progress::Progress;
/// let progress = Progress::new(true); // quiet: draws nothing
/// let bar = progress.bar(100, "burst-100 fired");
/// bar.set_position(40);
/// bar.finish_and_clear();
/// progress.println("burst-100: 100/100 fired");
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    multi: MultiProgress,
    quiet: bool,
}

impl Progress {
    /// A display on stderr; `quiet` hides the bars (lines still print, on stdout).
    #[must_use]
    pub fn new(quiet: bool) -> Self {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Progress { multi: MultiProgress::with_draw_target(target), quiet }
    }

    /// A bar counting to `len`, labelled `message`.
    #[must_use]
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.multi.add(ProgressBar::new(len).with_style(style).with_message(message.to_owned()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A spinner for a wait of unknown length.
    #[must_use]
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner} {msg} {elapsed_precise}").unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style).with_message(message.to_owned()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// Prints a line on stdout, above any bars.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.quiet || self.multi.is_hidden() {
            println!("{}", line.as_ref());
        } else {
            self.multi.suspend(|| println!("{}", line.as_ref()));
        }
    }
}
