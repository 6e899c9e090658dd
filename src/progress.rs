//! What a build shows on stderr while it generates: a progress bar when stderr is a terminal,
//! otherwise a plain line every few seconds (CI logs stay readable). Log lines written while the
//! bar is shown go through [`LogWriter`], which lifts the bar out of their way.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The bar being shown, if any, for [`LogWriter`].
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How often a plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The progress of one build's generation.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    failed: usize,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Starts showing progress for `total` images, or shows nothing when there are none.
    pub(crate) fn start(total: usize, concurrency: usize) -> Progress {
        let now = Instant::now();
        let mut progress = Progress {
            bar: None,
            total,
            done: 0,
            failed: 0,
            started: now,
            last_line: now,
        };
        if total == 0 {
            return progress;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "imagegen {bar:30.cyan/blue} {pos}/{len} images {msg} [{elapsed}]",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            progress.bar = Some(bar);
        } else {
            tracing::info!(
                "imagegen: generating {total} image{}, up to {} at a time",
                plural(total),
                concurrency.min(total)
            );
        }
        progress
    }

    /// Records a finished image.
    pub(crate) fn finished(&mut self, ok: bool, in_flight: usize) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done as u64);
            bar.set_message(self.message(in_flight));
        } else {
            self.tick(in_flight);
        }
    }

    /// Prints a plain line when one is due.
    pub(crate) fn tick(&mut self, in_flight: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.message(in_flight));
            return;
        }
        if self.total > 0 && self.last_line.elapsed() >= PLAIN_EVERY && self.done < self.total {
            self.last_line = Instant::now();
            tracing::info!(
                "imagegen: {} of {} images done{} ({}s)",
                self.done,
                self.total,
                self.message(in_flight),
                self.started.elapsed().as_secs()
            );
        }
    }

    fn message(&self, in_flight: usize) -> String {
        let mut message = format!(", {in_flight} in flight");
        if self.failed > 0 {
            message.push_str(&format!(", {} failed", self.failed));
        }
        message
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// `"s"` unless there is one.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes log lines to stderr, lifting the progress bar out of their way when one is shown.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().lock().write_all(buf)),
            None => std::io::stderr().lock().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
