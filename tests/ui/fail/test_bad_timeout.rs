#[e2e::test(env = "e2e_example", timeout = "2 parsecs")]
async fn unknown_unit() {}

#[e2e::test(env = "e2e_example", timeout = "120")]
async fn no_unit() {}

#[e2e::test(env = "e2e_example", timeout = "0s")]
async fn zero() {}

fn main() {}
