e2e::workload! {
    Redis { image: "redis:7.2", ports: { redis: 6379 }, readiness: tcp(redis) }
}

#[e2e::test(env = "e2e_example")]
async fn str_ref(name: &str) {
    let _ = name;
}

#[e2e::test(env = "e2e_example")]
async fn tuple_pattern((a, b): (Redis, Redis)) {
    let _ = (a, b);
}

#[e2e::test(env = "e2e_example")]
async fn impl_trait(w: impl e2e::Workload) {
    let _ = w;
}

#[e2e::test(env = "e2e_example")]
async fn env_by_value(env: e2e::Env) {
    let _ = env;
}

#[e2e::test(env = "e2e_example")]
async fn env_mut(env: &mut e2e::Env) {
    let _ = env;
}

#[e2e::test(env = "e2e_example")]
async fn two_envs(env: &e2e::Env, again: &e2e::Env) {
    let _ = (env, again);
}

#[e2e::test(env = "e2e_example")]
async fn ref_pattern(ref redis: Redis) {
    let _ = redis;
}

fn main() {}
