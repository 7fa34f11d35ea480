//! The framework's messages and container output as `tracing` events (issue 15): with a
//! subscriber installed, events carry fields and sit in the test's, env's and runnable's spans;
//! with none, the output is the plain prefixed lines it always was.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Env, StartOptions};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One event as recorded: target, level, message, fields, and the names of its spans
/// (innermost first) with their fields.
#[derive(Debug, Clone, Default)]
struct Seen {
    target: String,
    level: String,
    message: String,
    fields: Vec<(String, String)>,
    spans: Vec<String>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_string(), format!("{value:?}").trim_matches('"').to_string()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(String);

struct Record(Arc<Mutex<Vec<Seen>>>);

impl<S> Layer<S> for Record
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let text = fields.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(text));
        }
    }
    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(text)) = ext.get_mut::<SpanFields>() {
                for (k, v) in fields.0 {
                    text.push_str(&format!(" {k}={v}"));
                }
            }
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.iter().find(|(k, _)| k == "message").map(|(_, v)| v.clone()).unwrap_or_default();
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|s| {
                        let ext = s.extensions();
                        format!("{}[{}]", s.name(), ext.get::<SpanFields>().map_or("", |f| f.0.as_str()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().push(Seen {
            target: event.metadata().target().to_string(),
            level: event.metadata().level().to_string(),
            message,
            fields: fields.0,
            spans,
        });
    }
}

fn seen() -> &'static Arc<Mutex<Vec<Seen>>> {
    static SEEN: std::sync::OnceLock<Arc<Mutex<Vec<Seen>>>> = std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Before any test: the recording subscriber, unless this process is the child that checks
/// the output without one.
#[ctor::ctor(unsafe)]
fn install() {
    if std::env::var_os("E2E_TRACING_OFF").is_some() {
        return;
    }
    let subscriber = tracing_subscriber::registry().with(Record(seen().clone()));
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");
}

/// Waits (10 s at most) for an event that `matches`.
async fn event(what: &str, matches: impl Fn(&Seen) -> bool) -> Seen {
    let t = Instant::now();
    loop {
        if let Some(s) = seen().lock().unwrap().iter().find(|s| matches(s)) {
            return s.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no event {what}: {:#?}", seen().lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn talker(env: &Env, line: &str) -> e2e::Runnable {
    env.runnable("talker").init(StartOptions::new("busybox:1.35").command([
        "sh",
        "-c",
        &format!("echo {line}; exec sleep 3600"),
    ]))
}

#[e2e::test(env = "tr_on")]
async fn events_carry_fields_inside_the_tests_envs_and_runnables_spans(env: &Env) -> e2e::Result<()> {
    let r = talker(env, "hello-tracing");
    r.start_and_wait_ready().await?;
    let line = event("of the container's line", |s| s.message == "hello-tracing").await;
    assert_eq!(line.target, "e2e::output");
    assert_eq!(line.level, "INFO");
    assert_eq!(line.field("runnable"), Some("talker"));
    assert_eq!(line.field("stream"), Some("stdout"));
    let scope = line.spans.join(" < ");
    assert!(scope.starts_with("runnable[runnable=talker env=tr_on"), "{scope}");
    assert!(scope.contains("image=busybox:1.35") && scope.contains("container=tr_on-talker-"), "{scope}");
    assert!(scope.contains(" < env[env=tr_on network=e2e-"), "{scope}");
    assert!(
        scope.contains(" < test[test=events_carry_fields_inside_the_tests_envs_and_runnables_spans::tr_on env=tr_on]"),
        "{scope}"
    );

    r.exec(["echo", "via-exec"]).await?;
    let exec = event("of the exec's line", |s| s.message == "via-exec").await;
    assert_eq!((exec.target.as_str(), exec.field("what")), ("e2e::output", Some(" exec")));

    let started = event("of the start", |s| s.target == "e2e" && s.message == "started").await;
    assert_eq!(started.level, "DEBUG");
    assert!(started.field("container").is_some_and(|c| c.starts_with("tr_on-talker-")), "{started:?}");
    assert_eq!(started.field("image"), Some("busybox:1.35"));
    event("of the env's creation", |s| s.message == "env created" && s.spans[0].starts_with("env[")).await;
    // And no plain line was printed for it (the subscriber took it): checked by the child below.
    Ok(())
}

/// The child: the same scenario with no subscriber.
#[e2e::test(env = "tr_off")]
#[ignore]
async fn child_without_a_subscriber(env: &Env) -> e2e::Result<()> {
    let r = talker(env, "hello-plain");
    r.start_and_wait_ready().await?;
    r.exec(["echo", "via-exec"]).await?;
    let t = Instant::now();
    while !r.logs_tail(5).iter().any(|l| l == "hello-plain") && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[test]
fn without_a_subscriber_the_output_is_the_plain_prefixed_lines() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_without_a_subscriber::tr_off", "--nocapture"])
        .env("E2E_TRACING_OFF", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"talker: hello-plain"), "{stdout}");
    assert!(lines.contains(&"talker exec: via-exec"), "{stdout}");
}

/// The framework's own messages are events too (here: an env dropped without close).
#[tokio::test(flavor = "multi_thread")]
async fn the_frameworks_messages_are_warn_events_with_the_env() {
    let env = Env::docker("tr_drop").await.unwrap();
    drop(env);
    let dropped = event("of the drop", |s| s.message.contains("dropped without close()")).await;
    assert_eq!((dropped.target.as_str(), dropped.level.as_str()), ("e2e", "WARN"));
    assert_eq!(dropped.field("env"), Some("tr_drop"));
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=dev.e2e.env=tr_drop"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty());
}
