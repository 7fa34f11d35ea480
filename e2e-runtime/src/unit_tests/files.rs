//! Files on an engine whose host is not this one (the fake shares no files): `copy_to`,
//! `copy_from`, the runnable's directory and the shared directory as a volume.

use super::{env, IMAGE};
use crate::error::Error;
use crate::StartOptions;

#[tokio::test]
async fn files_copied_before_start_are_in_every_container_before_it_runs() {
    let (fake, env) = env("u_copy").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    r.copy_to("/etc/svc/config.yml", "port: 80\n").await.unwrap();
    r.start().await.unwrap();
    assert_eq!(r.copy_from("/etc/svc/config.yml").await.unwrap(), b"port: 80\n");
    let calls = fake.calls();
    let put = calls.iter().position(|c| c.starts_with("put_archive")).expect("put");
    let start = calls.iter().position(|c| c.starts_with("start_container")).expect("start");
    assert!(put < start, "put before the container runs: {calls:?}");
    // After start: at once; and both files are in the next container.
    r.copy_to("/etc/svc/extra", vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(r.copy_from("/etc/svc/extra").await.unwrap(), [1, 2, 3]);
    r.stop().await.unwrap();
    r.start().await.unwrap();
    assert_eq!(r.copy_from("/etc/svc/config.yml").await.unwrap(), b"port: 80\n");
    assert_eq!(r.copy_from("/etc/svc/extra").await.unwrap(), [1, 2, 3]);
    env.close().await.unwrap();
}

#[tokio::test]
async fn bad_paths_and_missing_files_are_named() {
    let (_fake, env) = env("u_copy_bad").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    for path in ["relative/file", "/a/../b", "/", "/a//b", "/a/./b"] {
        let e = r.copy_to(path, "x").await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidName { what: "file path", .. }) && e.to_string().contains(path),
            "{path}: {e}"
        );
    }
    assert!(matches!(r.copy_from("/x").await.unwrap_err(), Error::NotStarted { .. }));
    r.start().await.unwrap();
    let e = r.copy_from("/no/such/file").await.unwrap_err();
    assert!(e.to_string().contains("/no/such/file") && e.to_string().contains("\"svc\""), "{e}");
    env.close().await.unwrap();
}

#[tokio::test]
async fn the_runnables_directory_reaches_a_remote_container_and_comes_back() {
    let (fake, env) = env("u_dir").await;
    let r = env.runnable("svc").init(StartOptions::new(IMAGE));
    std::fs::create_dir_all(r.dir()).unwrap();
    std::fs::write(r.dir().join("prometheus.yml"), "scrape_configs: []\n").unwrap();
    r.start().await.unwrap();
    let inside = format!("{}/prometheus.yml", r.internal_dir());
    assert_eq!(r.copy_from(&inside).await.unwrap(), b"scrape_configs: []\n");
    // The container writes a file; download_dir brings the directory back.
    std::fs::remove_file(r.dir().join("prometheus.yml")).unwrap();
    let dir = r.download_dir().await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("prometheus.yml")).unwrap(), "scrape_configs: []\n");
    // The shared directory is a volume of the env (no path of this host is mounted).
    let spec = fake.containers().remove(&super::named("u_dir", "svc")).unwrap();
    let shared = spec.mounts.iter().find(|m| m.target == "/shared").unwrap();
    assert_eq!(shared.source, crate::engine::MountSource::Volume(super::named("u_dir", "shared")));
    env.close().await.unwrap();
    assert!(fake.volumes().is_empty(), "the shared volume goes with the env");
}
