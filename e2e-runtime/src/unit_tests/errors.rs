//! The error type's own logic.

use crate::engine::{EngineError, EngineErrorKind};
use crate::error::Error;

#[test]
fn all_of_no_one_or_many_errors() {
    assert!(Error::all(vec![]).is_ok());
    let one = Error::all(vec![Error::AlreadyStarted { runnable: "a".into() }]).unwrap_err();
    assert!(matches!(one, Error::AlreadyStarted { .. }));
    let many = Error::all(vec![
        Error::AlreadyStarted { runnable: "a".into() },
        Error::NotStarted { runnable: "b".into(), operation: "stop" },
    ])
    .unwrap_err();
    let msg = many.to_string();
    assert!(msg.starts_with("2 operations failed:"), "{msg}");
    assert!(msg.contains("\"a\" is already started") && msg.contains("\"b\" is not started"), "{msg}");
}

#[test]
fn engine_errors_keep_their_kind_and_status() {
    let e = Error::engine(
        "removing network x",
        EngineError::new(EngineErrorKind::InUse, Some(403), "has active endpoints"),
    );
    assert_eq!(e.engine_kind(), Some(EngineErrorKind::InUse));
    assert_eq!(e.to_string(), "removing network x: has active endpoints (status 403)");
    assert_eq!(Error::AlreadyStarted { runnable: "a".into() }.engine_kind(), None);
}

#[test]
fn declaration_errors_are_copied_whole() {
    let e = Error::DuplicateRunnable { env: "e".into(), name: "n".into() };
    assert_eq!(e.declaration_copy().to_string(), e.to_string());
    let e = Error::InvalidName { what: "runnable", name: "a b".into(), reason: "' ' is not allowed".into() };
    assert_eq!(e.declaration_copy().to_string(), e.to_string());
}
