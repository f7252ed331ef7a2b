//! The tokio runtime every store of the process shares: one worker thread, or as many as
//! `TOKIO_WORKER_THREADS` says.
//!
//! Node servers run one process per core, so a runtime per process with a worker per core
//! puts N² threads on N cores. And on this store a second worker costs more than it gives:
//! work handed between two workers parks and wakes them about once per call (docs/performance.md,
//! "Changes measured", has the figures).

/// The number of workers: `TOKIO_WORKER_THREADS` when it is a whole number from 1 to 64, else
/// 1. (Handed to tokio as is, a bad value would abort the process when the addon loads.)
fn workers(setting: Option<&str>) -> usize {
    setting
        .and_then(|value| value.trim().parse().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(1)
}

/// Installs the runtime before napi-rs would build its default one (a worker per core).
/// napi-rs owns it from here; should the process's last Node environment end while the
/// process goes on (the addon loaded only in `worker_threads` that exit), napi-rs builds its
/// default runtime for the next one.
#[napi_derive::module_init]
fn one_worker_runtime() {
    let setting = std::env::var("TOKIO_WORKER_THREADS").ok();
    // Never a panic at load time: should the runtime fail to build, napi-rs builds its own.
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(setting.as_deref()))
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
