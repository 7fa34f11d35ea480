#[e2e::test(env = "e2e_example", timeout = "10s", env = "other")]
async fn env_twice() {}

#[e2e::test(env = "e2e_example", timeout = "10s", timeout = "20s")]
async fn timeout_twice() {}

fn main() {}
