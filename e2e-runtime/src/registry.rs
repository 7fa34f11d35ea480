//! The declarations of a shared env, by runnable name: what defines each, which test declared
//! it first, the runnable it made, and its start, done once. A shared env carries one; the
//! runnable module declares through it and [`crate::shared`] starts through it.
//!
//! It sits below `env` and `runnable`, so it knows neither: it keeps each runnable as the
//! caller hands it in and gives it back as the same type ([`Registry::declare`] is generic).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Declarations, Error};

/// A runnable's start in a shared env: done once, its outcome seen by every test.
pub(crate) type Started = Arc<tokio::sync::OnceCell<Result<(), String>>>;

/// The runnables of a shared env, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    runnable: Box<dyn Any + Send + Sync>,
    definition: String,
    declared_by: String,
    started: Started,
}

tokio::task_local! {
    /// The test whose body runs, for messages that name it.
    pub(crate) static TEST: String;
}

fn current_test() -> String {
    TEST.try_with(|t| t.clone()).unwrap_or_else(|_| "a test".to_string())
}

impl Registry {
    /// The runnable `name` of env `env` as `definition` declares it: the one declared before
    /// under that name if its definition is the same. Otherwise `make` makes it, given `None`
    /// for a first declaration (it claims the name; the registry keeps what it makes) or the
    /// mismatch (the runnable it makes fails every call with it).
    pub(crate) fn declare<R>(
        &self,
        env: &str,
        name: &str,
        definition: String,
        make: impl FnOnce(Option<Error>) -> R,
    ) -> R
    where
        R: Clone + Send + Sync + 'static,
    {
        let test = current_test();
        let mut map = self.map.lock().unwrap();
        if let Some(e) = map.get(name) {
            match e.runnable.downcast_ref::<R>() {
                Some(r) if e.definition == definition => return r.clone(),
                _ => {}
            }
            let problem = Error::SharedMismatch {
                env: env.to_string(),
                runnable: name.to_string(),
                declarations: Box::new(Declarations {
                    first_test: e.declared_by.clone(),
                    first: e.definition.clone(),
                    test,
                    this: definition,
                }),
            };
            return make(Some(problem));
        }
        let runnable = make(None);
        let entry =
            Entry { runnable: Box::new(runnable.clone()), definition, declared_by: test, started: Started::default() };
        map.insert(name.to_string(), entry);
        runnable
    }

    /// The start of runnable `name`, if `is_it` says the registered one is the caller's (not
    /// a mismatching declaration of the same name).
    pub(crate) fn started<R: 'static>(&self, name: &str, is_it: impl FnOnce(&R) -> bool) -> Option<Started> {
        let map = self.map.lock().unwrap();
        let e = map.get(name)?;
        e.runnable.downcast_ref::<R>().filter(|r| is_it(r)).map(|_| e.started.clone())
    }
}
