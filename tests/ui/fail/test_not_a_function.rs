#[e2e::test(env = "e2e_example")]
struct NotAFunction;

fn main() {}
