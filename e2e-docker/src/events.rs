//! Container events: starts and deaths, in the engine's order.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{engine_error, Docker};
use e2e_runtime::engine::{EngineResult, Event, EventKind, Selector};

impl Docker {
    pub(super) fn events(&self, selector: &Selector, since: Option<i64>) -> BoxStream<'static, EngineResult<Event>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["start".to_string(), "die".to_string()]),
            ("label".to_string(), selector.terms().collect()),
        ]);
        // The engine takes `seconds.nanoseconds`.
        let since = since.map(|t| format!("{}.{:09}", t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000)));
        self.api
            .events(Some(EventsOptions { filters: Some(filters), since, ..Default::default() }))
            .filter_map(|item| async move {
                match item {
                    Ok(ev) => event_of(ev).map(Ok),
                    Err(e) => Some(Err(engine_error(e))),
                }
            })
            .boxed()
    }
}

/// A container's start or death, from the engine's event; `None` for any other event.
fn event_of(ev: bollard::models::EventMessage) -> Option<Event> {
    let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
    let container = attrs.get("name")?.clone();
    let kind = match ev.action.as_deref()? {
        "start" => EventKind::Started,
        "die" => EventKind::Died { exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(-1) },
        _ => return None,
    };
    // Seconds from an engine that sends no nanoseconds (saturating: a wild value is no panic).
    let time_nanos = ev.time_nano.or(ev.time.map(|t| t.saturating_mul(1_000_000_000))).unwrap_or(0);
    Some(Event { container, kind, time_nanos })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Event payloads as the engine could send them, and as it should not.
    fn payload() -> impl Strategy<Value = String> {
        let action = prop_oneof![Just("start".to_string()), Just("die".to_string()), ".{0,8}"];
        let code = prop_oneof![any::<i64>().prop_map(|c| c.to_string()), ".{0,6}"];
        let num =
            || prop_oneof![any::<i64>().prop_map(|t| t.to_string()), Just("1e30".to_string()), Just("null".into())];
        let wellformed = (action, prop::option::of(".{0,10}"), code, num(), num()).prop_map(|(a, name, code, t, tn)| {
            let name = name.map(|n| format!(r#""name":{},"#, serde_json::Value::String(n))).unwrap_or_default();
            format!(
                r#"{{"Type":"container","Action":{},"Actor":{{"ID":"x","Attributes":{{{name}"exitCode":{}}}}},"time":{t},"timeNano":{tn}}}"#,
                serde_json::Value::String(a),
                serde_json::Value::String(code)
            )
        });
        prop_oneof![4 => wellformed, 1 => any::<String>(), 1 => r#"[{}\[\]":,0-9a-z]{0,40}"#]
    }

    proptest! {
        #[test]
        fn event_payloads_never_panic(text in payload()) {
            let started = std::time::Instant::now();
            if let Ok(ev) = serde_json::from_str::<bollard::models::EventMessage>(&text) {
                if let Some(e) = event_of(ev) {
                    let known = matches!(e.kind, EventKind::Started | EventKind::Died { .. });
                    prop_assert!(known);
                }
            }
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[test]
    fn seconds_without_nanoseconds_saturate() {
        let ev = serde_json::from_str::<bollard::models::EventMessage>(
            r#"{"Action":"die","Actor":{"Attributes":{"name":"c","exitCode":"3"}},"time":9223372036854775807}"#,
        )
        .unwrap();
        let e = event_of(ev).unwrap();
        assert_eq!((e.kind, e.time_nanos), (EventKind::Died { exit_code: 3 }, i64::MAX));
    }
}
