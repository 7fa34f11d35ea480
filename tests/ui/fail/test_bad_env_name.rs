#[e2e::test(env = "my-env")]
async fn dash() {}

#[e2e::test(env = "9lives")]
async fn digit_first() {}

#[e2e::test(env = "loop")]
async fn keyword() {}

#[e2e::test(env = "a_very_long_env_name_that_is_over_32")]
async fn too_long() {}

#[e2e::test(env = "")]
async fn empty() {}

fn main() {}
