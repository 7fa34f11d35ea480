use e2e::{Env, Probe, StartOptions};

#[tokio::test(flavor = "multi_thread")]
async fn busybox_http() -> e2e::Result<()> {
    let env = Env::docker("e2e_smoke").await?;
    let web = env.runnable("web").with_ports([("http", 80)]).init(
        StartOptions::new("busybox:1.35")
            .command(["sh", "-c", "echo hello > /tmp/index.html && echo serving && httpd -f -v -p 80 -h /tmp"])
            .readiness(Probe::http("http", "/index.html")),
    );
    let t = std::time::Instant::now();
    e2e::start_and_wait_ready([&web]).await?;
    println!("ready in {:?}", t.elapsed());
    let out = web.exec(["sh", "-c", "echo hi; echo err >&2; exit 3"]).await?;
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.exit_code, 3);
    println!("endpoint {}", web.endpoint("http")?);
    let t = std::time::Instant::now();
    env.close().await?;
    println!("closed in {:?}", t.elapsed());
    Ok(())
}
