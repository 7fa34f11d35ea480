#[e2e::test(env = "e2e_example")]
async fn generic<T: Default>() {}

#[e2e::test(env = "e2e_example")]
async fn where_clause() where u8: Copy {}

#[e2e::test(env = "e2e_example")]
async unsafe fn not_safe() {}

fn main() {}
