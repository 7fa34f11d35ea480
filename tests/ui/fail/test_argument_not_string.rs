#[e2e::test("e2e_example")]
async fn no_key() {}

#[e2e::test(env = e2e_example)]
async fn not_a_literal() {}

#[e2e::test(env = "e2e_example", timeout = 120)]
async fn integer() {}

#[e2e::test(env("e2e_example"))]
async fn call_form() {}

#[e2e::test(env = "e2e_example" timeout = "1s")]
async fn missing_comma() {}

fn main() {}
