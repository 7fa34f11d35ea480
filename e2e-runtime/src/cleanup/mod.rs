//! Cleanup, in one place: removing an env's resources, sweeping what dead runs left, the
//! background reaper, the signal handler, the watchdog process, and the network pool. It
//! depends on the engine, the owner and the paths, never on `Env`: an env hands over what to
//! remove (its name, its network, its directory) and cleanup does the rest.
//!
//! How a run's resources go, whatever ends it:
//! - `Env::close` (or `#[e2e::test]`'s background close, through the [`reaper`]) removes them;
//! - an env dropped without close is removed by its `Drop`, on the [`session`]'s runtime;
//! - SIGINT / SIGTERM / SIGHUP: the [`signals`] handler removes the run's resources, then the process
//!   dies of the signal;
//! - SIGKILL (any death): the [`watchdog`] process notices the end of a pipe and removes them;
//! - if even that is gone, the next env of the same name sweeps what dead runs left
//!   ([`removal::sweep_dead`]).

pub(crate) mod netpool;
pub(crate) mod reaper;
pub(crate) mod removal;
pub(crate) mod session;
pub(crate) mod signals;
pub(crate) mod watchdog;

/// Installs the process hooks (signal handler, exit hook, watchdog), once per process.
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Made now, not on first use: that may be the exit hook, when a runtime can no longer
        // be built on the exiting thread.
        if let Err(e) = session::start() {
            crate::say::say!(warn, "{e}; envs are removed in the foreground");
        }
        signals::install();
        if !crate::settings::get().no_watchdog {
            if let Err(e) = watchdog::spawn() {
                crate::say::say!(
                    warn,
                    "could not start the cleanup watchdog ({e}); a killed run is cleaned up by the next one"
                );
            }
        }
    });
}
