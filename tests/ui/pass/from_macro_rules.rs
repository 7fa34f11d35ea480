//! Tests stamped out by `macro_rules!`: the env name arrives as a `$env:literal` fragment.
#![deny(warnings)]

macro_rules! env_tests {
    ($($name:ident $env:literal $timeout:literal),* $(,)?) => {$(
        #[e2e::test(env = $env, timeout = $timeout)]
        async fn $name(env: &e2e::Env) {
            assert_eq!(env.name(), $env);
        }
    )*};
}

env_tests! {
    first "stamped_1" "30s",
    second "stamped_2" "1m",
}

fn main() {}
