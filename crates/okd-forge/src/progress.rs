//! Copy progress for people: a bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use oci::{BlobOutcome, Descriptor, Progress, RawManifest};

/// Draws one bar of bytes across all transfers (terminal), or prints a line per finished blob.
pub struct CopyProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    copied: AtomicUsize,
    skipped: AtomicUsize,
}

impl CopyProgress {
    /// A bar when stderr is a terminal and `quiet` is false; plain lines when not a terminal; nothing
    /// when quiet.
    pub fn new(quiet: bool) -> CopyProgress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        CopyProgress {
            bar,
            quiet,
            copied: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    /// Remove the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for CopyProgress {
    fn blob_started(&self, desc: &Descriptor) {
        if let Some(bar) = &self.bar {
            bar.inc_length(desc.size);
        }
    }

    fn blob_bytes(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn blob_done(&self, desc: &Descriptor, outcome: BlobOutcome) {
        let counter = if outcome == BlobOutcome::Copied {
            &self.copied
        } else {
            &self.skipped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let verb = match outcome {
            BlobOutcome::Copied => "copied",
            BlobOutcome::Skipped => "exists",
            BlobOutcome::Mounted => "mounted",
        };
        if self.bar.is_some() {
            self.line(format!(
                "{} blobs copied, {} already there",
                self.copied.load(Ordering::Relaxed),
                self.skipped.load(Ordering::Relaxed)
            ));
        } else {
            self.line(format!(
                "blob {} {verb} ({})",
                desc.digest.short(),
                HumanBytes(desc.size)
            ));
        }
    }

    fn manifest_done(&self, raw: &RawManifest) {
        if self.bar.is_none() {
            self.line(format!("manifest {} written", raw.digest.short()));
        }
    }
}
