//! What okd-forge's benchmarks share: generated data sets kept under `target/bench-data`, and the
//! cost of a step (wall time, the CPU of the client processes it ran, the CPU of the registries it
//! used).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::RegistryServer;

/// `target/bench-data/NAME`, made by `generate` (given the empty directory) the first time, then
/// reused: a marker file written after `generate` returns tells a complete set from an interrupted
/// one, which is removed and made again.
pub fn data_set(name: &str, generate: impl FnOnce(&Path)) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/bench-data")
        .join(name);
    let done = dir.join("complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("generating the image set in {} (once)", dir.display());
    let start = Instant::now();
    generate(&dir);
    std::fs::write(&done, b"").expect("marker");
    eprintln!("generated in {:.1}s", start.elapsed().as_secs_f64());
    dir
}

/// The total size of the files directly in `dir` (e.g. a layout's `blobs/sha256`).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// What a measured step cost.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds (user + system) of the child processes that finished during the step.
    pub client_cpu: f64,
    /// CPU seconds the registries used during the step.
    pub registry_cpu: f64,
}

/// Run `f`, measuring its [`Cost`]; `registries` are the registries whose CPU counts.
pub fn measure<T>(registries: &[&RegistryServer], f: impl FnOnce() -> T) -> (T, Cost) {
    let registry_cpu = || registries.iter().map(|r| r.cpu_seconds()).sum::<f64>();
    let (cpu0, reg0) = (children_cpu(), registry_cpu());
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed().as_secs_f64();
    let cost = Cost {
        wall,
        client_cpu: children_cpu() - cpu0,
        registry_cpu: registry_cpu() - reg0,
    };
    (out, cost)
}

/// Wall-clock seconds `f` takes.
pub fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// CPU seconds used by finished child processes (the registries, still running, are not counted).
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and has no other preconditions.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The median of some samples (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
