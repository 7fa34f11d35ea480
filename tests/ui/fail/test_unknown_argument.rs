#[e2e::test(env = "e2e_example", name = "x")]
async fn unknown() {}

#[e2e::test(env = "e2e_example", timout = "10s")]
async fn typo() {}

fn main() {}
