//! Command-line flags and their environment-variable twins.
//!
//! Parsed by hand: the flag set is tiny and a parser crate would cost compile
//! time for nothing. Every flag has the form `--name=value`; the matching
//! environment variable is read first and a flag on the command line wins over
//! it. An empty environment variable counts as unset, so `docker run -e X=`
//! behaves like not passing X at all.

use std::net::SocketAddr;
use std::time::Duration;

/// The fixture's whole configuration, after defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub ready_after: Duration,
    pub listen_after: Duration,
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    pub log_every: Option<Duration>,
}

/// What `main` should do after parsing.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Config),
    Help,
}

/// One known flag: its name (without `--`), its environment variable, its
/// default as shown in the usage text (None = optional, off when absent).
pub struct Flag {
    pub name: &'static str,
    pub env: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

pub const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        env: "FIXTURE_LISTEN",
        default: Some("0.0.0.0:8080"),
        help: "HTTP address, an IP literal and port (no name lookup: a scratch image has no /etc/hosts)",
    },
    Flag {
        name: "ready-after",
        env: "FIXTURE_READY_AFTER",
        default: Some("0s"),
        help: "GET /ready answers 503 until this long after start (and until the port is bound)",
    },
    Flag {
        name: "listen-after",
        env: "FIXTURE_LISTEN_AFTER",
        default: Some("0s"),
        help: "do not bind the HTTP port until this long after start",
    },
    Flag {
        name: "exit-after",
        env: "FIXTURE_EXIT_AFTER",
        default: None,
        help: "exit by itself this long after start, with --exit-code",
    },
    Flag {
        name: "exit-code",
        env: "FIXTURE_EXIT_CODE",
        default: Some("0"),
        help: "exit code used by --exit-after (0..=255)",
    },
    Flag {
        name: "log-every",
        env: "FIXTURE_LOG_EVERY",
        default: None,
        help: "print `tick N` to stdout once per period",
    },
];

/// Usage text for `--help` and for error messages.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: e2e-fixture [--flag=value ...]\n\
         Each flag can also be given by its environment variable; the flag wins.\n\
         Durations look like 500ms, 2s, 1m, 1m30s.\n\n",
    );
    for f in FLAGS {
        let default = match f.default {
            Some(d) => format!("default {d}"),
            None => "optional".to_string(),
        };
        s.push_str(&format!("  --{}=VALUE  [{}] ({})\n      {}\n", f.name, f.env, default, f.help));
    }
    s.push_str("  --help\n      print this text and exit 0\n");
    s
}

fn known_flags() -> String {
    let mut names: Vec<String> = FLAGS.iter().map(|f| format!("--{}", f.name)).collect();
    names.push("--help".to_string());
    names.join(", ")
}

/// Parses a duration such as `500ms`, `2s`, `1m` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("not a duration ({e}); try 500ms, 2s or 1m"))
}

/// Parses the arguments (without the program name) and looks environment
/// variables up through `env`, so tests need not touch the real environment.
/// An `Err` carries the message for stderr; the caller exits 2.
pub fn parse<F>(args: &[String], env: F) -> Result<Parsed, String>
where
    F: Fn(&str) -> Option<String>,
{
    // raw[i] is the text for FLAGS[i] and where it came from, for messages.
    let mut raw: Vec<Option<(String, String)>> =
        FLAGS.iter().map(|f| env(f.env).filter(|v| !v.is_empty()).map(|v| (v, f.env.to_string()))).collect();

    for arg in args {
        if arg == "--help" || arg == "-h" {
            return Ok(Parsed::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument {arg:?}: flags look like --name=value; known flags: {}",
                known_flags()
            ));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(idx) = FLAGS.iter().position(|f| f.name == name) else {
            return Err(format!("unknown flag --{name}; known flags: {}", known_flags()));
        };
        let Some(value) = value else {
            return Err(format!("flag --{name} needs a value: --{name}=VALUE"));
        };
        raw[idx] = Some((value.to_string(), format!("--{name}")));
    }

    // Look a flag's text up, falling back to its default.
    let get = |name: &str| -> Option<(String, String)> {
        let idx = FLAGS.iter().position(|f| f.name == name).expect("flag is listed in FLAGS");
        raw[idx].clone().or_else(|| FLAGS[idx].default.map(|d| (d.to_string(), format!("default of --{name}"))))
    };
    let bad = |(value, from): &(String, String), why: String| format!("invalid value {value:?} for {from}: {why}");

    let duration = |name: &str| -> Result<Option<Duration>, String> {
        match get(name) {
            None => Ok(None),
            Some(v) => parse_duration(&v.0).map(Some).map_err(|e| bad(&v, e)),
        }
    };

    let listen_raw = get("listen").expect("listen has a default");
    let listen: SocketAddr = listen_raw
        .0
        .trim()
        .parse()
        .map_err(|e| bad(&listen_raw, format!("{e}; expected IP:PORT such as 0.0.0.0:8080 or [::]:8080")))?;

    let exit_code_raw = get("exit-code").expect("exit-code has a default");
    let exit_code: i32 = match exit_code_raw.0.trim().parse::<i32>() {
        Ok(n) if (0..=255).contains(&n) => n,
        _ => return Err(bad(&exit_code_raw, "expected an integer from 0 to 255".to_string())),
    };

    let log_every = duration("log-every")?;
    if log_every == Some(Duration::ZERO) {
        let v = get("log-every").expect("just parsed");
        return Err(bad(&v, "the period must be longer than zero".to_string()));
    }

    Ok(Parsed::Run(Config {
        listen,
        ready_after: duration("ready-after")?.expect("ready-after has a default"),
        listen_after: duration("listen-after")?.expect("listen-after has a default"),
        exit_after: duration("exit-after")?,
        exit_code,
        log_every,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run(parsed: Result<Parsed, String>) -> Config {
        match parsed {
            Ok(Parsed::Run(c)) => c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn defaults() {
        let c = run(parse(&[], no_env));
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.ready_after, Duration::ZERO);
        assert_eq!(c.listen_after, Duration::ZERO);
        assert_eq!(c.exit_after, None);
        assert_eq!(c.exit_code, 0);
        assert_eq!(c.log_every, None);
    }

    #[test]
    fn flags() {
        let c = run(parse(
            &args(&[
                "--listen=127.0.0.1:18080",
                "--ready-after=2s",
                "--listen-after=500ms",
                "--exit-after=1m",
                "--exit-code=3",
                "--log-every=100ms",
            ]),
            no_env,
        ));
        assert_eq!(c.listen, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(c.ready_after, Duration::from_secs(2));
        assert_eq!(c.listen_after, Duration::from_millis(500));
        assert_eq!(c.exit_after, Some(Duration::from_secs(60)));
        assert_eq!(c.exit_code, 3);
        assert_eq!(c.log_every, Some(Duration::from_millis(100)));
    }

    #[test]
    fn env_and_precedence() {
        let env = |k: &str| match k {
            "FIXTURE_LISTEN" => Some("[::1]:9000".to_string()),
            "FIXTURE_EXIT_CODE" => Some("7".to_string()),
            "FIXTURE_READY_AFTER" => Some(String::new()), // empty = unset
            _ => None,
        };
        let c = run(parse(&args(&["--exit-code=9"]), env));
        assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.exit_code, 9, "the flag wins over the variable");
        assert_eq!(c.ready_after, Duration::ZERO);
    }

    #[test]
    fn errors_name_the_culprit() {
        let e = parse(&args(&["--bogus=1"]), no_env).unwrap_err();
        assert!(e.contains("--bogus") && e.contains("--ready-after"), "{e}");

        let e = parse(&args(&["--ready-after"]), no_env).unwrap_err();
        assert!(e.contains("needs a value"), "{e}");

        let e = parse(&args(&["positional"]), no_env).unwrap_err();
        assert!(e.contains("positional"), "{e}");

        let e = parse(&args(&["--exit-code=256"]), no_env).unwrap_err();
        assert!(e.contains("--exit-code"), "{e}");

        let e = parse(&args(&["--log-every=0s"]), no_env).unwrap_err();
        assert!(e.contains("--log-every"), "{e}");

        let env = |k: &str| (k == "FIXTURE_EXIT_AFTER").then(|| "later".to_string());
        let e = parse(&[], env).unwrap_err();
        assert!(e.contains("FIXTURE_EXIT_AFTER"), "{e}");

        let e = parse(&args(&["--listen=localhost:80"]), no_env).unwrap_err();
        assert!(e.contains("--listen"), "{e}");
    }

    #[test]
    fn help() {
        assert_eq!(parse(&args(&["--help"]), no_env), Ok(Parsed::Help));
        assert!(usage().contains("FIXTURE_LOG_EVERY"));
    }
}
