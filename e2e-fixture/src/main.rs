//! e2e-fixture: the service that e2e packs into a `FROM scratch` image to test
//! itself against a workload whose behaviour is known in advance.
//!
//! Everything it does is set by flags (or their `FIXTURE_*` environment
//! variables) and HTTP requests: when the port opens, when it turns ready,
//! what it logs, which metrics it exposes, when and how it exits. It reads no
//! files and needs no environment of its own, so it runs as PID 1 under any
//! uid in an image that holds nothing but the binary and its libc.
//!
//! Lines on stdout that tests may wait for:
//! - `e2e-fixture starting listen=<addr>`
//! - `listening on <addr>`
//! - `ready <unix epoch microseconds>`
//! - `tick <n>` (with `--log-every`)
//! - `received SIGTERM, shutting down` / `received SIGINT, shutting down`

mod config;
mod metrics;
mod out;
mod query;
mod server;

use std::process;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use config::{Config, Parsed};
use metrics::Metrics;
use out::{say, warn};

/// Period of the `fixture_ticks_total` counter.
const TICK: Duration = Duration::from_millis(100);

fn main() {
    let start = Instant::now();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match config::parse(&args, |k| std::env::var(k).ok()) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help) => {
            print!("{}", config::usage());
            return;
        }
        Err(e) => {
            warn(&format!("e2e-fixture: {e}"));
            process::exit(2);
        }
    };

    // Before anything else: as PID 1 a signal without a handler is ignored,
    // so without this `docker stop` would wait out its whole timeout.
    watch_signals();

    say(&format!("e2e-fixture starting listen={}", config.listen));
    run(config, start);
}

fn watch_signals() {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            warn(&format!("e2e-fixture: cannot handle signals: {e}"));
            process::exit(1);
        }
    };
    spawn("signals", move || {
        if let Some(signal) = signals.forever().next() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            say(&format!("received {name}, shutting down"));
            // Nothing is buffered (every line is flushed) and no request
            // needs finishing, so exiting at once is the graceful path.
            process::exit(0);
        }
    });
}

fn run(config: Config, start: Instant) {
    let metrics = Arc::new(Metrics::new(start));

    {
        let metrics = Arc::clone(&metrics);
        spawn("ticks", move || every(start, TICK, |_| metrics.tick()));
    }
    if let Some(period) = config.log_every {
        spawn("log-every", move || every(start, period, |n| say(&format!("tick {n}"))));
    }
    if let Some(after) = config.exit_after {
        let code = config.exit_code;
        spawn("exit-after", move || {
            sleep_past(start, after);
            say(&format!("exiting with code {code} after --exit-after"));
            process::exit(code);
        });
    }

    sleep_past(start, config.listen_after);
    let server = match tiny_http::Server::http(config.listen) {
        Ok(s) => s,
        Err(e) => {
            warn(&format!("e2e-fixture: cannot listen on {}: {e}", config.listen));
            process::exit(1);
        }
    };
    // The real address, which differs from the flag when the port is 0.
    say(&format!("listening on {}", server.server_addr()));

    // Ready means `/ready` answers 200, which needs the port open: so the
    // flip waits for both --ready-after and the bind above.
    {
        let metrics = Arc::clone(&metrics);
        let ready_after = config.ready_after;
        spawn("ready", move || {
            sleep_past(start, ready_after);
            metrics.set_ready();
            say(&format!("ready {}", epoch_micros()));
        });
    }

    server::serve(server, metrics);
}

/// Calls `f(1)`, `f(2)`, ... at `start + period`, `start + 2 * period`, ...
/// Deadlines are counted from `start`, not from the previous call, so slow
/// calls or late wake-ups never accumulate into drift.
fn every(start: Instant, period: Duration, mut f: impl FnMut(u64)) {
    let mut n: u64 = 1;
    loop {
        let offset = u32::try_from(n).ok().and_then(|n| period.checked_mul(n));
        sleep_past(start, offset.unwrap_or(Duration::MAX));
        f(n);
        n += 1;
    }
}

/// Sleeps until `offset` after `start`. An offset too large for the clock
/// (say `--exit-after=1000years`) means a moment that never comes.
fn sleep_past(start: Instant, offset: Duration) {
    match start.checked_add(offset) {
        Some(deadline) => thread::sleep(deadline.saturating_duration_since(Instant::now())),
        None => loop {
            thread::park();
        },
    }
}

fn epoch_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().name(name.into()).spawn(f) {
        warn(&format!("e2e-fixture: cannot start thread {name}: {e}"));
        process::exit(1);
    }
}
