//! Which engine to talk to, decided as the docker CLI decides it: `DOCKER_HOST` (with TLS from
//! `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`), else the context `DOCKER_CONTEXT` names or
//! the current one of `~/.docker/config.json`, else the rootless socket
//! (`$XDG_RUNTIME_DIR/docker.sock`), else the default socket. Pure: the environment and the
//! file system come in through [`Lookup`], so every rule is unit-tested.

use std::path::{Path, PathBuf};

/// An engine address and how to speak to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Where the address came from, for messages: `DOCKER_HOST`, `context "ci"`, ...
    pub source: String,
    pub address: String,
    /// Client certificates for TLS (`ca.pem`, `cert.pem`, `key.pem`), when TLS is on.
    pub tls: Option<PathBuf>,
}

/// What resolution reads: variables and files.
pub(crate) trait Lookup {
    fn var(&self, name: &str) -> Option<String>;
    fn read(&self, path: &Path) -> Option<String>;
    fn exists(&self, path: &Path) -> bool;
}

/// The process's own environment and file system.
pub(crate) struct System;

impl Lookup for System {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// The default socket of a Linux engine.
pub(crate) const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// The places to try, in order, or why the configuration itself is wrong. An explicit choice
/// (`DOCKER_HOST`, a context) is the only candidate: like the CLI, it never falls back.
pub(crate) fn candidates(env: &dyn Lookup) -> Result<Vec<Candidate>, String> {
    let config_dir =
        env.var("DOCKER_CONFIG").map(PathBuf::from).or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".docker")));
    if let Some(host) = env.var("DOCKER_HOST") {
        let tls = yes(env.var("DOCKER_TLS_VERIFY").as_deref()) || env.var("DOCKER_TLS").is_some_and(|v| yes(Some(&v)));
        let tls = tls.then(|| env.var("DOCKER_CERT_PATH").map(PathBuf::from).or(config_dir.clone())).flatten();
        if yes(env.var("DOCKER_TLS_VERIFY").as_deref()) && tls.is_none() {
            return Err(
                "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME says where the certificates are".into(),
            );
        }
        return Ok(vec![Candidate { source: "DOCKER_HOST".into(), address: host, tls }]);
    }
    let context = match env.var("DOCKER_CONTEXT") {
        Some(name) => Some((name, "DOCKER_CONTEXT")),
        None => config_dir
            .as_ref()
            .and_then(|d| env.read(&d.join("config.json")))
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(str::to_string))
            .filter(|c| !c.is_empty())
            .map(|name| (name, "the current context of config.json")),
    };
    if let Some((name, why)) = context.filter(|(name, _)| name != "default") {
        let dir =
            config_dir.ok_or_else(|| format!("context {name:?} ({why}): no HOME or DOCKER_CONFIG to find it in"))?;
        return context_candidate(env, &dir, &name, why).map(|c| vec![c]);
    }
    let mut found = Vec::new();
    if let Some(runtime) = env.var("XDG_RUNTIME_DIR") {
        let socket = Path::new(&runtime).join("docker.sock");
        if env.exists(&socket) {
            let address = format!("unix://{}", socket.display());
            found.push(Candidate {
                source: "the rootless socket ($XDG_RUNTIME_DIR/docker.sock)".into(),
                address,
                tls: None,
            });
        }
    }
    found.push(Candidate { source: "the default socket".into(), address: DEFAULT_SOCKET.into(), tls: None });
    Ok(found)
}

/// A context's endpoint, from `contexts/meta/<sha256 of its name>/meta.json`.
fn context_candidate(env: &dyn Lookup, config: &Path, name: &str, why: &str) -> Result<Candidate, String> {
    let id = hex(ring::digest::digest(&ring::digest::SHA256, name.as_bytes()).as_ref());
    let meta = config.join("contexts").join("meta").join(&id).join("meta.json");
    let text = env
        .read(&meta)
        .ok_or_else(|| format!("context {name:?} ({why}) is not defined: {} is missing", meta.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("context {name:?}: {} is not JSON: {e}", meta.display()))?;
    let docker = &value["Endpoints"]["docker"];
    let address = docker["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("context {name:?}: {} names no docker endpoint Host", meta.display()))?
        .to_string();
    let tls_dir = config.join("contexts").join("tls").join(&id).join("docker");
    let tls =
        (env.exists(&tls_dir.join("ca.pem")) && docker["SkipTLSVerify"].as_bool() != Some(true)).then_some(tls_dir);
    Ok(Candidate { source: format!("context {name:?} ({why})"), address, tls })
}

fn yes(value: Option<&str>) -> bool {
    matches!(value.map(|v| v.to_ascii_lowercase()).as_deref(), Some("1" | "true" | "yes" | "on"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fixture {
        vars: HashMap<&'static str, String>,
        files: HashMap<PathBuf, String>,
    }

    impl Lookup for Fixture {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(path)
        }
    }

    fn with(vars: &[(&'static str, &str)]) -> Fixture {
        Fixture { vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(), ..Default::default() }
    }

    fn addresses(f: &Fixture) -> Vec<(String, Option<PathBuf>)> {
        candidates(f).unwrap().into_iter().map(|c| (c.address, c.tls)).collect()
    }

    #[test]
    fn docker_host_is_the_only_candidate_and_tls_follows_the_cli_variables() {
        let f = with(&[("DOCKER_HOST", "tcp://docker:2375"), ("HOME", "/home/u")]);
        assert_eq!(addresses(&f), [("tcp://docker:2375".to_string(), None)]);
        let f =
            with(&[("DOCKER_HOST", "tcp://docker:2376"), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/certs")]);
        assert_eq!(addresses(&f), [("tcp://docker:2376".to_string(), Some(PathBuf::from("/certs")))]);
        let f = with(&[("DOCKER_HOST", "tcp://docker:2376"), ("DOCKER_TLS_VERIFY", "1"), ("HOME", "/home/u")]);
        assert_eq!(addresses(&f)[0].1, Some(PathBuf::from("/home/u/.docker")), "certificates default to ~/.docker");
        let f = with(&[("DOCKER_HOST", "tcp://docker:2376"), ("DOCKER_TLS_VERIFY", "1")]);
        assert!(candidates(&f).unwrap_err().contains("DOCKER_CERT_PATH"));
    }

    #[test]
    fn without_an_explicit_choice_the_rootless_socket_comes_before_the_default() {
        let mut f = with(&[("XDG_RUNTIME_DIR", "/run/user/1000"), ("HOME", "/home/u")]);
        assert_eq!(addresses(&f), [(DEFAULT_SOCKET.to_string(), None)], "no rootless socket there");
        f.files.insert("/run/user/1000/docker.sock".into(), String::new());
        let found = candidates(&f).unwrap();
        assert_eq!(found[0].address, "unix:///run/user/1000/docker.sock");
        assert_eq!(found[1].address, DEFAULT_SOCKET);
    }

    #[test]
    fn a_context_is_read_from_its_meta_file_with_its_tls_material() {
        let id = hex(ring::digest::digest(&ring::digest::SHA256, b"remote").as_ref());
        let mut f = with(&[("HOME", "/home/u")]);
        f.files.insert("/home/u/.docker/config.json".into(), r#"{"currentContext": "remote"}"#.into());
        let meta = format!("/home/u/.docker/contexts/meta/{id}/meta.json");
        f.files.insert(
            meta.into(),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"tcp://10.0.0.9:2376","SkipTLSVerify":false}}}"#.into(),
        );
        let tls = PathBuf::from(format!("/home/u/.docker/contexts/tls/{id}/docker"));
        f.files.insert(tls.join("ca.pem"), String::new());
        let found = candidates(&f).unwrap();
        assert_eq!((found[0].address.as_str(), found[0].tls.clone()), ("tcp://10.0.0.9:2376", Some(tls)));
        assert!(found[0].source.contains("\"remote\""), "{}", found[0].source);
        // DOCKER_CONTEXT wins over config.json, and `default` is the sockets.
        f.vars.insert("DOCKER_CONTEXT", "default".into());
        assert_eq!(addresses(&f), [(DEFAULT_SOCKET.to_string(), None)]);
        f.vars.insert("DOCKER_CONTEXT", "nowhere".into());
        let e = candidates(&f).unwrap_err();
        assert!(e.contains("\"nowhere\"") && e.contains("DOCKER_CONTEXT") && e.contains("meta.json"), "{e}");
    }

    #[test]
    fn docker_host_wins_over_a_context() {
        let mut f = with(&[("HOME", "/home/u"), ("DOCKER_HOST", "unix:///tmp/d.sock"), ("DOCKER_CONTEXT", "remote")]);
        f.files.insert("/home/u/.docker/config.json".into(), r#"{"currentContext": "remote"}"#.into());
        assert_eq!(addresses(&f), [("unix:///tmp/d.sock".to_string(), None)]);
    }
}
