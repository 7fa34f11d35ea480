#[e2e::test(env = "e2e_example")]
#[test]
async fn plain_test() {}

#[e2e::test(env = "e2e_example")]
#[tokio::test(flavor = "multi_thread")]
async fn tokio_test() {}

#[e2e::test(env = "e2e_example")]
#[e2e::test(env = "e2e_example")]
async fn twice() {}

fn main() {}
