#[e2e::test]
async fn no_arguments() {}

#[e2e::test(timeout = "10s")]
async fn only_a_timeout() {}

fn main() {}
