//! A program that closes its env itself and returns from `main` (as a benchmark's or a
//! standalone program's does) exits cleanly, its idle network removed by the exit hook. Its
//! own harness: libtest ends with `process::exit`, which is not this path. It answers
//! cargo-nextest's `--list` as one test, `exit_hook`.

mod common;

const CHILD: &str = "E2E_EXIT_HOOK_CHILD";

fn main() {
    // cargo-nextest lists a binary's tests first (`--list --format terse`), then runs each.
    if common::answered_nextest_list("exit_hook") {
        return;
    }
    if std::env::var_os(CHILD).is_some() {
        println!("pid {}", std::process::id());
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let env = e2e::Env::docker("rt_exit_hook").await.unwrap();
            let r = env.runnable("a").init(e2e::StartOptions::new("busybox:1.35").command(["sleep", "3600"]));
            r.start().await.unwrap();
            env.close().await.unwrap();
        });
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap()).env(CHILD, "1").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "the child ended with {:?}:\n{text}", child.status);
    let pid = text.lines().find_map(|l| l.strip_prefix("pid ")).expect("the child says its pid").trim().to_string();
    // Its network was pooled when the env closed, then removed by the exit hook.
    let pid: u32 = pid.parse().expect("a pid");
    assert_eq!(common::pooled_networks_of(pid), 0, "the child's pooled network is left");
    assert!(common::docker(&["ps", "-aq", "--filter", "label=dev.e2e.env=rt_exit_hook"]).is_empty());
    println!("exit_hook: a program returning from main after close exits cleanly");
}
