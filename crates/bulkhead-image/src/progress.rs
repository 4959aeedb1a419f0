//! Shows an import's [`Progress`] to a person: on a terminal, one line per
//! layer with a bar that is redrawn in place while the layer is read;
//! otherwise (a log, a pipe, `--quiet`) one plain line per finished layer.
//! Warnings are always shown.

use std::io::Write;

use crate::store::Progress;

const BAR: usize = 24;

/// Turns [`Progress`] events into text on `out` (normally stderr).
pub struct ProgressPrinter<W: Write> {
    out: W,
    live: bool,
    /// (layer index, percent) last drawn, so a redraw happens only when
    /// the bar changes.
    drawn: Option<(usize, u64)>,
}

impl<W: Write> ProgressPrinter<W> {
    /// `live`: redraw a bar in place (for a terminal); otherwise plain
    /// lines only.
    pub fn new(out: W, live: bool) -> Self {
        ProgressPrinter {
            out,
            live,
            drawn: None,
        }
    }

    /// Shows one event. Write errors are ignored: progress is advisory.
    pub fn event(&mut self, p: &Progress) {
        match p {
            Progress::Layer {
                index,
                count,
                diff_id,
                read,
                total,
            } => {
                if !self.live {
                    return;
                }
                let pct = (read.saturating_mul(100))
                    .checked_div(*total)
                    .unwrap_or(100)
                    .min(100);
                if self.drawn == Some((*index, pct)) {
                    return;
                }
                self.drawn = Some((*index, pct));
                let filled = (pct as usize * BAR) / 100;
                let _ = write!(
                    self.out,
                    "\r\x1b[Klayer {}/{count} {} [{}{}] {pct:>3}% {:.1}/{:.1} MiB",
                    index + 1,
                    &diff_id.hex()[..12],
                    "#".repeat(filled),
                    ".".repeat(BAR - filled),
                    *read as f64 / 1048576.0,
                    *total as f64 / 1048576.0,
                );
                let _ = self.out.flush();
            }
            Progress::LayerDone { .. } | Progress::Warning { .. } => {
                let prefix = if matches!(p, Progress::Warning { .. }) {
                    "warning: "
                } else {
                    ""
                };
                if self.live && self.drawn.take().is_some() {
                    let _ = write!(self.out, "\r\x1b[K");
                }
                let _ = writeln!(self.out, "{prefix}{p}");
                let _ = self.out.flush();
            }
        }
    }

    /// Ends a bar left open (after a failed import), so that what is
    /// printed next starts on a line of its own.
    pub fn finish(&mut self) {
        if self.live && self.drawn.take().is_some() {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }

    /// The writer back.
    pub fn into_inner(mut self) -> W {
        self.finish();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    fn events() -> Vec<Progress> {
        let d = Digest::of(b"layer");
        let layer = |read| Progress::Layer {
            index: 0,
            count: 2,
            diff_id: d.clone(),
            read,
            total: 4 << 20,
        };
        vec![
            layer(1 << 20),
            layer(1 << 20),
            layer(2 << 20),
            Progress::Warning {
                diff_id: d.clone(),
                entry: "dev/null".into(),
                message: "device node skipped".into(),
            },
            layer(4 << 20),
            Progress::LayerDone {
                index: 0,
                count: 2,
                diff_id: d.clone(),
                cached: false,
            },
            Progress::LayerDone {
                index: 1,
                count: 2,
                diff_id: d,
                cached: true,
            },
        ]
    }

    fn render(live: bool) -> String {
        let mut p = ProgressPrinter::new(Vec::new(), live);
        for e in events() {
            p.event(&e);
        }
        String::from_utf8(p.into_inner()).unwrap()
    }

    #[test]
    fn plain_is_one_line_per_layer_and_warnings() {
        let hex = &Digest::of(b"layer").hex()[..12].to_string();
        assert_eq!(
            render(false),
            format!(
                "warning: layer {hex}: \"dev/null\": device node skipped\n\
                 layer 1/2 {hex}: unpacked\n\
                 layer 2/2 {hex}: already in the store\n"
            )
        );
    }

    #[test]
    fn live_redraws_a_bar_only_when_it_changes() {
        let out = render(true);
        // 25%, 50%, then 100% after the warning: the repeated 25% is not
        // drawn again.
        assert_eq!(out.matches("%").count(), 3, "{out}");
        assert!(
            out.contains("[######..................]  25% 1.0/4.0 MiB"),
            "{out}"
        );
        assert!(out.contains("[########################] 100%"), "{out}");
        // Each finished layer ends up on a clean line of its own.
        assert!(out.contains("\r\x1b[Klayer 1/2 "), "{out}");
        assert!(out.ends_with("already in the store\n"), "{out}");
        assert_eq!(out.lines().count(), 3, "{out:?}");
    }
}
