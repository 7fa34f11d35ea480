//! Container events: starts and deaths, in the engine's order.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{engine_error, Docker};
use crate::engine::{EngineResult, Event, EventKind, Selector};

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
                let ev = match item {
                    Ok(ev) => ev,
                    Err(e) => return Some(Err(engine_error(e))),
                };
                let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
                let container = attrs.get("name")?.clone();
                let kind = match ev.action.as_deref()? {
                    "start" => EventKind::Started,
                    "die" => {
                        EventKind::Died { exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(-1) }
                    }
                    _ => return None,
                };
                let time_nanos = ev.time_nano.or(ev.time.map(|t| t * 1_000_000_000)).unwrap_or(0);
                Some(Ok(Event { container, kind, time_nanos }))
            })
            .boxed()
    }
}
