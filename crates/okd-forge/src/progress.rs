//! Progress for people: a bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use oci::{BlobOutcome, Descriptor, Progress, RawManifest};

/// A bar drawn with `template` when stderr is a terminal and `quiet` is false.
fn terminal_bar(quiet: bool, template: &str) -> Option<ProgressBar> {
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    })
}

/// Draws one bar of bytes across all transfers (terminal), or prints a line per finished blob.
pub struct CopyProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    copied: AtomicUsize,
    skipped: AtomicUsize,
    mounted: AtomicUsize,
}

impl CopyProgress {
    /// A bar when stderr is a terminal and `quiet` is false; plain lines when not a terminal; nothing
    /// when quiet.
    pub fn new(quiet: bool) -> CopyProgress {
        CopyProgress {
            bar: terminal_bar(
                quiet,
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            ),
            quiet,
            copied: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
            mounted: AtomicUsize::new(0),
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

    fn blob_bytes_discarded(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.dec(n);
        }
    }

    fn blob_done(&self, desc: &Descriptor, outcome: BlobOutcome) {
        let (counter, verb) = match outcome {
            BlobOutcome::Copied => (&self.copied, "copied"),
            BlobOutcome::Skipped => (&self.skipped, "exists"),
            BlobOutcome::Mounted => (&self.mounted, "mounted"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.set_message(format!(
                "{} blobs copied, {} already there, {} mounted",
                self.copied.load(Ordering::Relaxed),
                self.skipped.load(Ordering::Relaxed),
                self.mounted.load(Ordering::Relaxed)
            )),
            None if !self.quiet => {
                eprintln!(
                    "blob {} {verb} ({})",
                    desc.digest.short(),
                    HumanBytes(desc.size)
                )
            }
            None => {}
        }
    }

    fn manifest_done(&self, raw: &RawManifest) {
        if self.bar.is_none() && !self.quiet {
            eprintln!("manifest {} written", raw.digest.short());
        }
    }
}

/// Progress of `release new`'s reading: a bar per stage on a terminal, a line per item otherwise.
pub struct AssembleBar {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl AssembleBar {
    /// A bar when stderr is a terminal and `quiet` is false; plain lines when not a terminal.
    pub fn new(quiet: bool) -> AssembleBar {
        AssembleBar {
            bar: terminal_bar(
                quiet,
                "{spinner} [{elapsed_precise}] [{wide_bar}] {msg} {pos}/{len}",
            ),
            quiet,
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl payload::new::AssembleProgress for AssembleBar {
    fn step(&self, stage: &str, item: &str, done: usize, total: usize) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(if stage == "scanned" {
                    "reading images"
                } else {
                    "reading operator manifests"
                });
            }
            None if !self.quiet => eprintln!("{stage} {item} ({done}/{total})"),
            None => {}
        }
    }
}
