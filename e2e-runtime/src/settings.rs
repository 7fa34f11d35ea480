//! Every `E2E_*` setting, read from the process environment once, with one rule for each kind
//! of value, so that a variable means the same wherever the runtime asks for it.
//!
//! Booleans: `1`, `true`, `yes`, `on` (any case) turn a setting on; `0`, `false`, `no`, `off`
//! and the empty string, or no variable at all, leave it off. Any other value is refused:
//! `Env::docker` fails with [`Error::InvalidSetting`] naming the variable and the value, and
//! the setting stays at its default.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// When to keep an env instead of removing it (`E2E_KEEP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Keep {
    #[default]
    Never,
    OnFailure,
    Always,
}

/// The settings of this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `E2E_QUIET`: containers' output stays out of the test output.
    pub quiet: bool,
    /// `E2E_KEEP`.
    pub keep: Keep,
    /// `E2E_PUBLISH_PORTS`: the engine publishes ports instead of this process relaying them.
    pub publish_ports: bool,
    /// `E2E_NO_WATCHDOG`: no cleanup watchdog process.
    pub no_watchdog: bool,
    /// `E2E_HOST_ADDRESS`: the IP address by which this process reaches the engine's host,
    /// where ports are published (by default `127.0.0.1` for a local engine, the host of
    /// `DOCKER_HOST` for a remote one).
    pub host_address: Option<String>,
    /// `E2E_REUSE`: shared envs stay warm across runs, removed after being idle this long.
    pub reuse: Option<std::time::Duration>,
    /// `E2E_NFT`: the host's `nft` binary that network faults package into their helper image
    /// (by default the first `nft` on `PATH`, `/usr/sbin` or `/sbin`).
    pub nft: Option<std::path::PathBuf>,
    /// `E2E_IPTABLES`: the host's `xtables-nft-multi` that added delay packages into its helper
    /// image (by default the first on `PATH`, `/usr/sbin` or `/sbin`).
    pub iptables: Option<std::path::PathBuf>,
    /// The variables whose value was refused: (variable, value, accepted values).
    invalid: Vec<(&'static str, String, &'static str)>,
}

const BOOL_VALUES: &str = "1, true, yes, on, or 0, false, no, off, empty";
const KEEP_VALUES: &str = "never, on-failure, always";

impl Settings {
    /// Reads every setting through `lookup` (the process environment, or a test's table).
    pub(crate) fn parse(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        let mut s = Settings::default();
        s.quiet = s.boolean(&lookup, "E2E_QUIET");
        s.publish_ports = s.boolean(&lookup, "E2E_PUBLISH_PORTS");
        s.no_watchdog = s.boolean(&lookup, "E2E_NO_WATCHDOG");
        if let Some(value) = lookup("E2E_HOST_ADDRESS").filter(|v| !v.is_empty()) {
            match value.parse::<std::net::IpAddr>() {
                Ok(ip) => s.host_address = Some(ip.to_string()),
                Err(_) => s.invalid.push(("E2E_HOST_ADDRESS", value, "an IP address, such as 10.0.0.5")),
            }
        }
        s.nft = lookup("E2E_NFT").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        s.iptables = lookup("E2E_IPTABLES").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        if let Some(value) = lookup("E2E_REUSE").filter(|v| !v.is_empty()) {
            match humantime::parse_duration(&value) {
                Ok(d) => s.reuse = Some(d),
                Err(_) => s.invalid.push(("E2E_REUSE", value, "a duration, such as 10m or 30s")),
            }
        }
        if let Some(value) = lookup("E2E_KEEP") {
            s.keep = match value.to_ascii_lowercase().as_str() {
                "" | "never" => Keep::Never,
                "on-failure" => Keep::OnFailure,
                "always" => Keep::Always,
                _ => {
                    s.invalid.push(("E2E_KEEP", value, KEEP_VALUES));
                    Keep::Never
                }
            };
        }
        s
    }

    fn boolean(&mut self, lookup: &impl Fn(&str) -> Option<String>, var: &'static str) -> bool {
        let Some(value) = lookup(var) else { return false };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "" | "0" | "false" | "no" | "off" => false,
            _ => {
                self.invalid.push((var, value, BOOL_VALUES));
                false
            }
        }
    }

    /// The first refused variable, as an error.
    pub(crate) fn check(&self) -> Result<()> {
        match self.invalid.first() {
            Some((variable, value, accepted)) => {
                Err(Error::InvalidSetting { variable, value: value.clone(), accepted })
            }
            None => Ok(()),
        }
    }

    /// Whether the engine must publish ports: asked for, or implied by keeping envs (a kept
    /// env is used after this process is gone).
    pub(crate) fn publish_by_engine(&self) -> bool {
        self.publish_ports || self.keep != Keep::Never
    }
}

/// This process's settings, read from its environment the first time they are needed.
pub(crate) fn get() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    // A value that is not UTF-8 is kept (lossily) so that it is refused by name, not ignored.
    SETTINGS.get_or_init(|| Settings::parse(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Settings {
        Settings::parse(|var| vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn nothing_set_is_the_defaults() {
        let s = parse(&[]);
        assert_eq!(s, Settings::default());
        assert!(s.check().is_ok());
        assert!(!s.publish_by_engine());
    }

    #[test]
    fn booleans_share_one_rule() {
        for var in ["E2E_QUIET", "E2E_PUBLISH_PORTS", "E2E_NO_WATCHDOG"] {
            let get = |s: &Settings| match var {
                "E2E_QUIET" => s.quiet,
                "E2E_PUBLISH_PORTS" => s.publish_ports,
                _ => s.no_watchdog,
            };
            for on in ["1", "true", "yes", "on", "TRUE", "Yes"] {
                let s = parse(&[(var, on)]);
                assert!(get(&s) && s.check().is_ok(), "{var}={on}");
            }
            for off in ["", "0", "false", "no", "off", "OFF"] {
                let s = parse(&[(var, off)]);
                assert!(!get(&s) && s.check().is_ok(), "{var}={off}");
            }
            let s = parse(&[(var, "2")]);
            assert!(!get(&s), "{var}=2 is refused, not taken as on");
            assert_eq!(
                s.check().unwrap_err().to_string(),
                format!("invalid value \"2\" for {var}: accepted values are {BOOL_VALUES}")
            );
        }
    }

    #[test]
    fn the_host_address_is_an_ip_address() {
        assert_eq!(parse(&[("E2E_REUSE", "10m")]).reuse, Some(std::time::Duration::from_secs(600)));
        assert_eq!(parse(&[("E2E_REUSE", "")]).reuse, None);
        let e = parse(&[("E2E_REUSE", "soon")]).check().unwrap_err().to_string();
        assert!(e.contains("E2E_REUSE") && e.contains("soon") && e.contains("duration"), "{e}");
        assert_eq!(parse(&[("E2E_HOST_ADDRESS", "10.0.0.5")]).host_address.as_deref(), Some("10.0.0.5"));
        assert_eq!(parse(&[("E2E_HOST_ADDRESS", "")]).host_address, None);
        let s = parse(&[("E2E_HOST_ADDRESS", "docker.local")]);
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("E2E_HOST_ADDRESS") && e.contains("docker.local") && e.contains("IP address"), "{e}");
    }

    #[test]
    fn keep_is_one_of_three_words() {
        for (value, keep) in [
            ("never", Keep::Never),
            ("", Keep::Never),
            ("on-failure", Keep::OnFailure),
            ("always", Keep::Always),
            ("Always", Keep::Always),
        ] {
            let s = parse(&[("E2E_KEEP", value)]);
            assert_eq!((s.keep, s.check().is_ok()), (keep, true), "E2E_KEEP={value}");
            assert_eq!(s.publish_by_engine(), keep != Keep::Never, "E2E_KEEP={value}");
        }
        // `yes` used to publish ports yet keep nothing: now it is refused and does neither.
        for value in ["yes", "1", "on_failure"] {
            let s = parse(&[("E2E_KEEP", value)]);
            assert_eq!(s.keep, Keep::Never);
            assert!(!s.publish_by_engine());
            let e = s.check().unwrap_err().to_string();
            assert_eq!(e, format!("invalid value {value:?} for E2E_KEEP: accepted values are {KEEP_VALUES}"));
        }
    }

    #[test]
    fn every_refused_variable_keeps_the_others() {
        let s = parse(&[("E2E_QUIET", "loud"), ("E2E_PUBLISH_PORTS", "1"), ("E2E_KEEP", "maybe")]);
        assert!(!s.quiet && s.publish_ports && s.keep == Keep::Never);
        assert_eq!(s.invalid.len(), 2);
        assert!(s.check().unwrap_err().to_string().contains("E2E_QUIET"));
    }
}
