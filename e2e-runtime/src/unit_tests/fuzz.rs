//! Property tests ("fuzzing") of what the framework parses from outside: metric expositions
//! (with label matchers and sums), owner labels and the `E2E_*` settings; the engine's event
//! payloads are fuzzed beside their decoding (e2e-docker/src/events.rs). Each case must neither
//! panic nor take long. A short run is part of `cargo test` (proptest's 256 cases a test, or
//! `PROPTEST_CASES`); a long one:
//!
//!     PROPTEST_CASES=200000 cargo test -p e2e-runtime --lib fuzz --release
//!
//! The hand-written corpus of tricky inputs is `e2e-runtime/tests/corpus/`; failures proptest
//! finds are kept (shrunk) in `proptest-regressions/` and replayed first.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::metrics::{Exposition, Matcher, MetricsOptions};
use crate::owner::Owner;
use crate::settings::Settings;

/// A case may take this long at most (a parser that loops on some input fails here).
const QUICK: Duration = Duration::from_secs(2);

fn quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(started.elapsed() < QUICK, "{what} took {:?}", started.elapsed());
    out
}

/// Everything a test can ask of an exposition: its families, and sums under matchers.
fn exercise(text: &str, matchers: &[(String, String, u8)]) {
    quick("parsing and summing an exposition", || {
        let e = Exposition::parse(text);
        let names: Vec<String> = e.families().iter().map(|f| f.name().to_string()).collect();
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|(name, value, op)| match op % 4 {
                0 => Matcher::equal(name, value),
                1 => Matcher::not_equal(name, value),
                2 => Matcher::regex(name, value),
                _ => Matcher::not_regex(name, value),
            })
            .collect();
        let options = MetricsOptions::new().matchers(matchers);
        for name in
            names.iter().chain(["", "x", "a_sum"].iter().map(|s| &**s).map(String::from).collect::<Vec<_>>().iter())
        {
            let _ = e.sum(name, &options);
            let _ = e.sum(name, &MetricsOptions::new());
            let _ = e.metric_type(name);
        }
        let _ = e.series().len();
        let only = Exposition::parse_only(text, names.iter().take(2).cloned());
        let _ = only.families().len();
    });
}

/// Exposition-like text: a mix of well-formed lines, near misses and noise.
fn exposition_text() -> impl Strategy<Value = String> {
    let name = "[a-z_:][a-z0-9_:]{0,12}";
    let label = ("[a-z_]{1,6}", r#"[a-z0-9 _\\"\n{}=,.-]{0,10}"#).prop_map(|(k, v)| format!("{k}=\"{v}\""));
    let labels = prop::collection::vec(label, 0..4).prop_map(|l| l.join(","));
    let value = prop_oneof![
        Just("NaN".to_string()),
        Just("+Inf".to_string()),
        Just("-Inf".to_string()),
        Just("1e309".to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        "[0-9.eE+-]{0,8}",
    ];
    let sample = (name, labels, value, prop::option::of(any::<i64>())).prop_map(|(n, l, v, t)| {
        let ts = t.map(|t| format!(" {t}")).unwrap_or_default();
        if l.is_empty() {
            format!("{n} {v}{ts}")
        } else {
            format!("{n}{{{l}}} {v}{ts}")
        }
    });
    let kind = prop_oneof![
        Just("counter"),
        Just("gauge"),
        Just("histogram"),
        Just("summary"),
        Just("untyped"),
        Just("info"),
        Just("")
    ];
    let comment = prop_oneof![
        (name, kind).prop_map(|(n, k)| format!("# TYPE {n} {k}")),
        (name, ".{0,20}").prop_map(|(n, h)| format!("# HELP {n} {h}")),
        ".{0,20}".prop_map(|c| format!("#{c}")),
    ];
    let line = prop_oneof![6 => sample, 2 => comment, 1 => ".{0,30}", 1 => Just(String::new())];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

fn matchers() -> impl Strategy<Value = Vec<(String, String, u8)>> {
    prop::collection::vec(("[a-z_]{0,6}", r"[a-z0-9.*+?()\[\]{}|^$\\-]{0,12}", any::<u8>()), 0..3)
}

proptest! {
    #[test]
    fn expositions_never_panic(text in exposition_text(), matchers in matchers()) {
        exercise(&text, &matchers);
    }

    #[test]
    fn any_text_is_an_exposition_that_never_panics(text in any::<String>(), matchers in matchers()) {
        exercise(&text, &matchers);
    }

    #[test]
    fn sums_add_what_the_series_hold(values in prop::collection::vec(-1.0e6f64..1.0e6, 1..20)) {
        let text: String = values.iter().enumerate().map(|(i, v)| format!("m{{i=\"{i}\"}} {v}\n")).collect();
        let got = Exposition::parse(text).sum("m", &MetricsOptions::new()).unwrap();
        let want: f64 = values.iter().sum();
        prop_assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} != {want}");
    }

    #[test]
    fn owner_labels_never_panic(label in any::<String>()) {
        quick("parsing an owner label", || {
            if let Some(o) = Owner::parse(&label) {
                // What parses displays as a label that parses to the same owner.
                assert_eq!(Owner::parse(&o.to_string()), Some(o.clone()));
                let _ = (o.tag(), o.is_dead());
            }
        });
    }

    #[test]
    fn owner_labels_round_trip(host in "[a-z0-9./-]{1,20}", pid in any::<u32>(), start in any::<u64>()) {
        let label = format!("{host}/{pid}/{start}");
        let o = Owner::parse(&label).expect("a well-formed label parses");
        prop_assert_eq!(o.to_string(), label);
    }

    #[test]
    fn settings_never_panic(values in prop::collection::vec(any::<String>(), 9)) {
        const VARS: [&str; 9] = ["E2E_QUIET", "E2E_PUBLISH_PORTS", "E2E_NO_WATCHDOG", "E2E_HOST_ADDRESS", "E2E_NFT",
            "E2E_IPTABLES", "E2E_REUSE", "E2E_KEEP", "E2E_UNKNOWN"];
        quick("parsing the settings", || {
            let s = Settings::parse(|var| VARS.iter().position(|v| *v == var).map(|i| values[i].clone()));
            // A refused value is an error naming its variable.
            if let Err(e) = s.check() {
                assert!(VARS.iter().any(|v| e.to_string().contains(v)), "{e}");
            }
        });
    }

    #[test]
    fn durations_in_settings_parse_or_are_refused(value in prop_oneof!["[0-9]{1,25}(ns|us|ms|s|m|h|d|w|y)?", any::<String>()]) {
        quick("parsing a duration", || {
            let s = Settings::parse(|var| (var == "E2E_REUSE").then(|| value.clone()));
            assert!(s.reuse.is_some() || value.is_empty() || s.check().is_err(), "{value:?} neither parsed nor refused");
        });
    }
}

/// The hand-written corpus: each file is an exposition that once needed care.
#[test]
fn the_corpus_parses_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/expositions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        // A scrape is read as lossy UTF-8: so is the corpus.
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        exercise(&text, &[("job".into(), ".*".into(), 2), ("le".into(), "+Inf".into(), 0)]);
        n += 1;
    }
    assert!(n >= 5, "the corpus has {n} files");
}
