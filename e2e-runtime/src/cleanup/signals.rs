//! The process hooks of a run: on SIGINT / SIGTERM / SIGHUP a handler thread removes every resource of
//! this run, then the process dies of the signal as it would have; at a normal exit the
//! background removals finish, then the networks they gave back to the pool are removed.

use std::collections::HashSet;

/// Installs the signal handler and the exit hook.
pub(crate) fn install() {
    install_signal_handler();
    // SAFETY: registering a plain `extern "C"` function.
    unsafe { libc::atexit(at_exit) };
}

/// Work that runs first at exit (shared envs closing), registered by those who need it.
static FIRST_AT_EXIT: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Runs `f` at exit, before the pending removals are waited for.
pub(crate) fn at_exit_first(f: fn()) {
    let mut first = FIRST_AT_EXIT.lock().unwrap();
    if !first.contains(&f) {
        first.push(f);
    }
}

extern "C" fn at_exit() {
    let first = std::mem::take(&mut *FIRST_AT_EXIT.lock().unwrap());
    for f in first {
        f();
    }
    crate::cleanup::reaper::wait_at_exit();
    if !crate::cleanup::netpool::has_idle() {
        return;
    }
    let removed = crate::cleanup::session::block_on(None, |engine| {
        Box::pin(async move { crate::cleanup::netpool::remove_idle(&*engine).await })
    });
    if let Err(e) = removed {
        crate::say::say!(warn, "removing this run's idle networks at exit failed ({e}); the watchdog removes them");
    }
}

fn install_signal_handler() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            crate::say::say!(warn, "cannot handle SIGINT/SIGTERM/SIGHUP ({e}); the watchdog will clean up instead");
            return;
        }
    };
    std::thread::Builder::new()
        .name("e2e-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGHUP => "SIGHUP",
                    _ => "SIGTERM",
                };
                crate::say::say!(warn, "{name} received: removing this run's containers, networks and volumes");
                match remove_this_run() {
                    Ok(n) => crate::say::say!(warn, "removed the resources of {n} env(s)"),
                    Err(e) => crate::say::say!(warn, "cleanup after {name} failed: {e}"),
                }
                // Die of the signal, as the process would have without us.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .expect("a thread can be spawned");
}

/// Removes every resource of this run but those of kept envs.
fn remove_this_run() -> crate::Result<usize> {
    let kept: HashSet<String> = crate::cleanup::watchdog::kept();
    crate::cleanup::session::block_on(None, move |engine| {
        Box::pin(async move { crate::cleanup::removal::remove_owned(&*engine, crate::owner::current(), &kept).await })
    })
}
