//! An in-memory engine for unit tests: containers, networks, volumes, images and events kept
//! in maps, with knobs for what a test needs to provoke (a container that exits at start, a
//! failing call, a broken event stream, a phantom network endpoint).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{
    ContainerSpec, ContainerState, Engine, EngineError, EngineErrorKind, EngineResult, Event, EventKind, Found,
    ImageBuild, ImageInfo, ImageRef, Labels, NetworkState, Output, ResourceKind, Selector, Usage,
};

/// What a container of an image does once started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Behaviour {
    /// Lines it prints at start (stderr when the flag is set).
    pub lines: Vec<(bool, String)>,
    /// It exits with this code right after starting.
    pub exits_with: Option<i64>,
    /// Exit codes of the execs run in it, in turn (then 0).
    pub exec_codes: VecDeque<i64>,
}

#[derive(Debug)]
struct Container {
    id: String,
    /// Files put into it: path → content.
    files: BTreeMap<String, Vec<u8>>,
    spec: ContainerSpec,
    state: ContainerState,
    output: broadcast::Sender<Output>,
    printed: Vec<Output>,
}

#[derive(Debug)]
struct Network {
    name: String,
    labels: Labels,
    attached: BTreeSet<String>,
    /// How many more removals the engine refuses with "active endpoints" once it is empty.
    phantom: u32,
}

#[derive(Debug, Default)]
struct World {
    images: BTreeMap<String, ImageInfo>,
    /// Images a pull can fetch.
    pullable: BTreeSet<String>,
    behaviours: HashMap<String, Behaviour>,
    containers: BTreeMap<String, Container>,
    networks: BTreeMap<String, Network>,
    volumes: BTreeMap<String, Labels>,
    /// Calls to fail next, by operation name.
    faults: HashMap<&'static str, VecDeque<EngineError>>,
    /// Calls carried out whose answer is then lost (a connection reset after the engine acted),
    /// by operation name: how many more.
    lost: HashMap<&'static str, u32>,
    /// Calls that wait for a release before the engine acts (a slow engine), by operation name.
    holds: HashMap<&'static str, VecDeque<Arc<tokio::sync::Notify>>>,
    /// Every call, as `op arg`.
    calls: Vec<String>,
    pulls: Vec<(String, String)>,
    history: Vec<Event>,
}

/// The in-memory engine.
#[derive(Debug)]
pub(crate) struct Fake {
    address: String,
    world: Mutex<World>,
    events: broadcast::Sender<EngineResult<Event>>,
    clock: AtomicU64,
}

impl Fake {
    /// A new engine with no images.
    pub fn new() -> Arc<Fake> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(Fake {
            address: format!("fake://{}", NEXT.fetch_add(1, Ordering::Relaxed)),
            world: Mutex::default(),
            events: broadcast::channel(1024).0,
            clock: AtomicU64::new(1),
        })
    }

    /// Adds an image, present on the engine.
    pub fn image(&self, reference: &str) -> &Self {
        let id = format!("sha256:{:x}", reference.len() * 7919);
        self.world.lock().unwrap().images.insert(reference.to_string(), ImageInfo { id, labels: Labels::new() });
        self
    }

    /// Makes an image available to pulls (not present until pulled).
    pub fn pullable(&self, reference: &str) -> &Self {
        self.world.lock().unwrap().pullable.insert(reference.to_string());
        self
    }

    /// Sets what containers of `image` do.
    pub fn behaviour(&self, image: &str, behaviour: Behaviour) -> &Self {
        self.world.lock().unwrap().behaviours.insert(image.to_string(), behaviour);
        self
    }

    /// Fails the next call of `op` (a method name of [`Engine`]) with this kind.
    pub fn fail_next(&self, op: &'static str, kind: EngineErrorKind) -> &Self {
        let error = EngineError::new(kind, None, format!("injected failure of {op}"));
        self.world.lock().unwrap().faults.entry(op).or_default().push_back(error);
        self
    }

    /// Carries out the next call of `op` (create_container, create_network, start_container,
    /// remove_container) and then fails it as a broken connection: the engine acted, the
    /// caller does not know.
    pub fn lose_next_answer(&self, op: &'static str) -> &Self {
        *self.world.lock().unwrap().lost.entry(op).or_default() += 1;
        self
    }

    /// Has the next call of `op` (connect_network, disconnect_network) wait until the returned
    /// notify is notified before the engine acts on it.
    pub fn hold_next(&self, op: &'static str) -> Arc<tokio::sync::Notify> {
        let release = Arc::new(tokio::sync::Notify::new());
        self.world.lock().unwrap().holds.entry(op).or_default().push_back(release.clone());
        release
    }

    /// Waits for the release of a held call of `op`, if one is held.
    async fn held(&self, op: &'static str) {
        let hold = self.world.lock().unwrap().holds.get_mut(op).and_then(|q| q.pop_front());
        if let Some(release) = hold {
            release.notified().await;
        }
    }

    /// Has the next `times` removals of network `name` refused as in use though empty.
    pub fn phantom_endpoint(&self, name: &str, times: u32) {
        let mut world = self.world.lock().unwrap();
        let n = world.networks.values_mut().find(|n| n.name == name).expect("a network of that name");
        n.phantom = times;
    }

    /// Breaks every event stream open now (they end with an error).
    pub fn break_events(&self) {
        let _ = self.events.send(Err(EngineError::new(EngineErrorKind::Unavailable, None, "connection reset")));
    }

    /// The container `name` prints a line.
    pub fn print(&self, name: &str, line: &str) {
        let mut world = self.world.lock().unwrap();
        let c = world.containers.values_mut().find(|c| c.spec.name == name).expect("a container of that name");
        let out = Output { stderr: false, bytes: format!("{line}\n").into() };
        c.printed.push(out.clone());
        let _ = c.output.send(out);
    }

    /// The container `name` exits with `code`, as if its process ended, without an event when
    /// `silently` (an event the stream lost).
    pub fn exit(&self, name: &str, code: i64, silently: bool) {
        let event = {
            let mut world = self.world.lock().unwrap();
            let c = world.containers.values_mut().find(|c| c.spec.name == name).expect("a container of that name");
            if !c.state.running {
                return;
            }
            stop(c, code);
            let e = self.event(name, EventKind::Died { exit_code: code });
            world.history.push(e.clone());
            e
        };
        if !silently {
            let _ = self.events.send(Ok(event));
        }
    }

    /// Adds a container as another run (or a foreign tool) would have made it.
    pub fn foreign_container(&self, name: &str, labels: Labels, running: bool) -> String {
        let mut world = self.world.lock().unwrap();
        let id = format!("{:064x}", world.containers.len() + 10_000);
        let state = ContainerState {
            name: name.to_string(),
            running,
            status: if running { "running" } else { "exited" }.into(),
            labels: labels.clone(),
            ..Default::default()
        };
        let spec = ContainerSpec { name: name.to_string(), labels, ..Default::default() };
        world.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                files: BTreeMap::new(),
                spec,
                state,
                output: broadcast::channel(16).0,
                printed: vec![],
            },
        );
        id
    }

    /// Attaches container `id` to network `network` (an id), as another run would have.
    pub fn attach(&self, id: &str, network: &str) {
        let mut world = self.world.lock().unwrap();
        let n = world.networks.get_mut(network).expect("a network of the fake");
        n.attached.insert(id.to_string());
        let name = n.name.clone();
        let c = world.containers.get_mut(id).expect("a container of the fake");
        c.state.addresses.insert(name, "172.30.0.9".into());
    }

    /// Adds a network or volume as another run would have made it.
    pub fn foreign(&self, kind: ResourceKind, name: &str, labels: Labels) -> String {
        let mut world = self.world.lock().unwrap();
        match kind {
            ResourceKind::Network => {
                let id = format!("n-{name}");
                world
                    .networks
                    .insert(id.clone(), Network { name: name.into(), labels, attached: BTreeSet::new(), phantom: 0 });
                id
            }
            ResourceKind::Volume => {
                world.volumes.insert(name.to_string(), labels);
                name.to_string()
            }
            ResourceKind::Container => panic!("use foreign_container"),
        }
    }

    /// The specs of the containers that exist now, by name.
    pub fn containers(&self) -> BTreeMap<String, ContainerSpec> {
        self.world.lock().unwrap().containers.values().map(|c| (c.spec.name.clone(), c.spec.clone())).collect()
    }

    /// The names of the networks that exist now.
    pub fn networks(&self) -> Vec<String> {
        self.world.lock().unwrap().networks.values().map(|n| n.name.clone()).collect()
    }

    /// The names of the volumes that exist now.
    pub fn volumes(&self) -> Vec<String> {
        self.world.lock().unwrap().volumes.keys().cloned().collect()
    }

    /// The calls made so far, as `op arg`.
    pub fn calls(&self) -> Vec<String> {
        self.world.lock().unwrap().calls.clone()
    }

    /// The pulls made so far: (repository, tag or digest).
    pub fn pulls(&self) -> Vec<(String, String)> {
        self.world.lock().unwrap().pulls.clone()
    }

    fn event(&self, container: &str, kind: EventKind) -> Event {
        Event { container: container.to_string(), kind, time_nanos: self.clock.fetch_add(1, Ordering::Relaxed) as i64 }
    }

    /// Records the call and returns the injected failure, if any.
    fn call(&self, op: &'static str, arg: &str) -> EngineResult<std::sync::MutexGuard<'_, World>> {
        let mut world = self.world.lock().unwrap();
        world.calls.push(format!("{op} {arg}"));
        if let Some(e) = world.faults.get_mut(op).and_then(|q| q.pop_front()) {
            return Err(e);
        }
        Ok(world)
    }

    fn emit(&self, world: &mut World, event: Event) {
        world.history.push(event.clone());
        let _ = self.events.send(Ok(event));
    }
}

impl World {
    /// The answer of a call carried out, unless it is to be lost.
    fn answer<T>(&mut self, op: &'static str, value: T) -> EngineResult<T> {
        match self.lost.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(EngineError::new(EngineErrorKind::Unavailable, None, format!("connection reset after {op}")))
            }
            _ => Ok(value),
        }
    }
}

fn not_found(what: &str) -> EngineError {
    EngineError::new(EngineErrorKind::NotFound, Some(404), format!("No such {what}"))
}

fn find<'a>(world: &'a mut World, id: &str) -> EngineResult<&'a mut Container> {
    world
        .containers
        .values_mut()
        .find(|c| c.id == id || c.spec.name == id)
        .ok_or_else(|| not_found(&format!("container: {id}")))
}

fn stop(c: &mut Container, code: i64) {
    c.state.running = false;
    c.state.paused = false;
    c.state.status = "exited".into();
    c.state.exit_code = Some(code);
}

#[async_trait::async_trait]
impl Engine for Fake {
    fn address(&self) -> &str {
        &self.address
    }

    fn containers_reachable(&self) -> bool {
        false
    }

    fn bound_to_runtime(&self) -> bool {
        false
    }

    fn host_address(&self) -> &str {
        "127.0.0.1"
    }

    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String> {
        let mut world = self.call("create_container", &spec.name)?;
        if !world.images.contains_key(&spec.image) {
            return Err(EngineError::new(
                EngineErrorKind::NoSuchImage,
                Some(404),
                format!("No such image: {}", spec.image),
            ));
        }
        if world.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(EngineError::new(
                EngineErrorKind::Conflict,
                Some(409),
                format!("Conflict. The container name \"/{}\" is already in use", spec.name),
            ));
        }
        let id = format!("{:064x}", world.containers.len() + 1 + world.calls.len() * 1000);
        let state = ContainerState {
            name: spec.name.clone(),
            status: "created".into(),
            labels: spec.labels.clone(),
            ..Default::default()
        };
        let c = Container {
            id: id.clone(),
            files: BTreeMap::new(),
            spec: spec.clone(),
            state,
            output: broadcast::channel(256).0,
            printed: vec![],
        };
        world.containers.insert(id.clone(), c);
        world.answer("create_container", id)
    }

    async fn start_container(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("start_container", id)?;
        let n = world.containers.len();
        let c = find(&mut world, id)?;
        c.state.running = true;
        c.state.status = "running".into();
        c.state.exit_code = None;
        if let Some(network) = c.spec.network.clone() {
            c.state.addresses.insert(network.clone(), format!("10.0.0.{}", n + 1));
        }
        if c.spec.publish_on.is_some() {
            c.state.host_ports =
                c.spec.ports.iter().enumerate().map(|(i, p)| (*p, 40000 + (n * 10 + i) as u16)).collect();
        }
        let (name, image, network, cid) =
            (c.spec.name.clone(), c.spec.image.clone(), c.spec.network.clone(), c.id.clone());
        if let Some(net) = network.and_then(|n| world.networks.get_mut(&n)) {
            net.attached.insert(cid.clone());
            // Addresses are keyed by the network's name, as the engine reports them.
            let net_name = net.name.clone();
            let c = find(&mut world, &cid)?;
            if let Some(ip) = c.state.addresses.values().next().cloned() {
                c.state.addresses = HashMap::from([(net_name, ip)]);
            }
        }
        let started = self.event(&name, EventKind::Started);
        self.emit(&mut world, started);
        let behaviour = world.behaviours.get(&image).cloned().unwrap_or_default();
        let c = find(&mut world, &cid)?;
        for (stderr, line) in &behaviour.lines {
            let out = Output { stderr: *stderr, bytes: format!("{line}\n").into() };
            c.printed.push(out.clone());
            let _ = c.output.send(out);
        }
        if let Some(code) = behaviour.exits_with {
            stop(c, code);
            let died = self.event(&name, EventKind::Died { exit_code: code });
            self.emit(&mut world, died);
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<ContainerState> {
        let mut world = self.call("inspect_container", id)?;
        Ok(find(&mut world, id)?.state.clone())
    }

    async fn stop_container(&self, id: &str, _timeout: Duration) -> EngineResult<()> {
        let mut world = self.call("stop_container", id)?;
        let c = find(&mut world, id)?;
        if c.state.running {
            stop(c, 143);
            let died = self.event(&c.spec.name.clone(), EventKind::Died { exit_code: 143 });
            self.emit(&mut world, died);
        }
        Ok(())
    }

    async fn kill_container(&self, id: &str, _signal: &str) -> EngineResult<()> {
        let mut world = self.call("kill_container", id)?;
        let c = find(&mut world, id)?;
        if !c.state.running {
            return Err(EngineError::new(
                EngineErrorKind::Conflict,
                Some(409),
                format!("Container {id} is not running"),
            ));
        }
        stop(c, 137);
        let died = self.event(&c.spec.name.clone(), EventKind::Died { exit_code: 137 });
        self.emit(&mut world, died);
        Ok(())
    }

    async fn pause_container(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("pause_container", id)?;
        find(&mut world, id)?.state.paused = true;
        Ok(())
    }

    async fn unpause_container(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("unpause_container", id)?;
        find(&mut world, id)?.state.paused = false;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("remove_container", id)?;
        let Ok(c) = find(&mut world, id) else { return Ok(()) };
        let (cid, name, running) = (c.id.clone(), c.spec.name.clone(), c.state.running);
        world.containers.remove(&cid);
        for n in world.networks.values_mut() {
            n.attached.remove(&cid);
        }
        if running {
            let died = self.event(&name, EventKind::Died { exit_code: 137 });
            self.emit(&mut world, died);
        }
        world.answer("remove_container", ())
    }

    fn logs(&self, id: &str) -> BoxStream<'static, EngineResult<Output>> {
        let Ok(mut world) = self.call("logs", id) else { return futures_util::stream::empty().boxed() };
        let Ok(c) = find(&mut world, id) else { return futures_util::stream::empty().boxed() };
        let backlog = futures_util::stream::iter(c.printed.clone().into_iter().map(Ok));
        let live = futures_util::stream::unfold(c.output.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(out) => return Some((Ok(out), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        backlog.chain(live).boxed()
    }

    async fn put_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> EngineResult<()> {
        let mut world = self.call("put_archive", &format!("{id} {dir}"))?;
        let c = find(&mut world, id)?;
        let bad = |e: std::io::Error| EngineError::new(EngineErrorKind::BadRequest, Some(400), e.to_string());
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if entry.header().entry_type().is_file() {
                let path = format!("{}/{}", dir.trim_end_matches('/'), entry.path().map_err(bad)?.display());
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut content).map_err(bad)?;
                c.files.insert(path, content);
            }
        }
        Ok(())
    }

    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Vec<u8>> {
        let mut world = self.call("get_archive", &format!("{id} {path}"))?;
        let c = find(&mut world, id)?;
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let found: Vec<_> = c.files.iter().filter(|(p, _)| *p == path || p.starts_with(&prefix)).collect();
        if found.is_empty() {
            return Err(not_found(&format!("file or directory: {path}")));
        }
        // Entries are named from the last component of `path`, as the engine names them.
        let base = std::path::Path::new(path.trim_end_matches('/')).file_name().unwrap().to_string_lossy().into_owned();
        let mut builder = tar::Builder::new(Vec::new());
        for (p, content) in found {
            let name = if p == path { base.clone() } else { format!("{base}/{}", &p[prefix.len()..]) };
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, &content[..]).unwrap();
        }
        Ok(builder.into_inner().unwrap())
    }

    async fn usage(&self, id: &str) -> EngineResult<Usage> {
        let mut world = self.call("usage", id)?;
        find(&mut world, id)?;
        Ok(Usage { cpu_seconds: 1.5, memory_bytes: 1024.0, rx_bytes: 10.0, tx_bytes: 20.0 })
    }

    async fn exec(&self, id: &str, command: &[String], output: &mut (dyn FnMut(Output) + Send)) -> EngineResult<i64> {
        let code = {
            let mut world = self.call("exec", &format!("{id} {}", command.join(" ")))?;
            let c = find(&mut world, id)?;
            if !c.state.running {
                return Err(EngineError::new(
                    EngineErrorKind::Conflict,
                    Some(409),
                    format!("Container {id} is not running"),
                ));
            }
            let image = c.spec.image.clone();
            world.behaviours.get_mut(&image).and_then(|b| b.exec_codes.pop_front()).unwrap_or(0)
        };
        output(Output { stderr: false, bytes: format!("ran {}\n", command.join(" ")).into() });
        Ok(code)
    }

    async fn create_network(&self, name: &str, labels: &Labels) -> EngineResult<String> {
        let mut world = self.call("create_network", name)?;
        if world.networks.values().any(|n| n.name == name) {
            return Err(EngineError::new(
                EngineErrorKind::Conflict,
                Some(409),
                format!("network with name {name} already exists"),
            ));
        }
        let id = format!("n-{name}");
        world.networks.insert(
            id.clone(),
            Network { name: name.into(), labels: labels.clone(), attached: BTreeSet::new(), phantom: 0 },
        );
        world.answer("create_network", id)
    }

    async fn network_exists(&self, name: &str) -> EngineResult<bool> {
        let world = self.call("network_exists", name)?;
        Ok(world.networks.values().any(|n| n.name == name))
    }

    async fn inspect_network(&self, id: &str) -> EngineResult<NetworkState> {
        let world = self.call("inspect_network", id)?;
        let n = world.networks.get(id).ok_or_else(|| not_found(&format!("network: {id}")))?;
        Ok(NetworkState { containers: n.attached.len(), gateway: Some("10.0.0.1".into()) })
    }

    async fn remove_network(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("remove_network", id)?;
        let Some(n) = world.networks.get_mut(id) else { return Ok(()) };
        if !n.attached.is_empty() || n.phantom > 0 {
            n.phantom = n.phantom.saturating_sub(1);
            return Err(EngineError::new(
                EngineErrorKind::InUse,
                Some(403),
                format!("error while removing network: network {} id {id} has active endpoints", n.name),
            ));
        }
        world.networks.remove(id);
        Ok(())
    }

    async fn connect_network(&self, network: &str, container: &str, _aliases: &[String]) -> EngineResult<()> {
        self.held("connect_network").await;
        let mut world = self.call("connect_network", &format!("{network} {container}"))?;
        let cid = find(&mut world, container)?.id.clone();
        let n = world.networks.get_mut(network).ok_or_else(|| not_found("network"))?;
        n.attached.insert(cid.clone());
        let name = n.name.clone();
        find(&mut world, &cid)?.state.addresses.insert(name, "10.0.0.200".into());
        Ok(())
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> EngineResult<()> {
        self.held("disconnect_network").await;
        let mut world = self.call("disconnect_network", &format!("{network} {container}"))?;
        let cid = find(&mut world, container)?.id.clone();
        // By id or, as the engine also takes, by name.
        let id = world.networks.iter().find(|(id, n)| *id == network || n.name == network).map(|(id, _)| id.clone());
        let n = id.and_then(|id| world.networks.get_mut(&id)).ok_or_else(|| not_found("network"))?;
        n.attached.remove(&cid);
        let name = n.name.clone();
        find(&mut world, &cid)?.state.addresses.remove(&name);
        Ok(())
    }

    async fn create_volume(&self, name: &str, labels: &Labels) -> EngineResult<()> {
        let mut world = self.call("create_volume", name)?;
        world.volumes.entry(name.to_string()).or_insert_with(|| labels.clone());
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let mut world = self.call("remove_volume", name)?;
        world.volumes.remove(name);
        Ok(())
    }

    async fn list(&self, kind: ResourceKind, selector: &Selector) -> EngineResult<Vec<Found>> {
        let world = self.call("list", &kind.to_string())?;
        let found = |id: &str, labels: &Labels| {
            selector.selects(labels).then(|| Found { id: id.to_string(), labels: labels.clone() })
        };
        Ok(match kind {
            ResourceKind::Container => world.containers.values().filter_map(|c| found(&c.id, &c.spec.labels)).collect(),
            ResourceKind::Network => world.networks.iter().filter_map(|(id, n)| found(id, &n.labels)).collect(),
            ResourceKind::Volume => world.volumes.iter().filter_map(|(name, l)| found(name, l)).collect(),
        })
    }

    fn container_events(&self, selector: &Selector, since: Option<i64>) -> BoxStream<'static, EngineResult<Event>> {
        let Ok(world) = self.call("container_events", &since.map(|s| s.to_string()).unwrap_or_default()) else {
            return futures_util::stream::once(async {
                Err(EngineError::new(EngineErrorKind::Unavailable, None, "injected"))
            })
            .boxed();
        };
        // Every container's events: names are env-prefixed, so other envs' events touch no
        // watched container.
        let _ = selector;
        let replay: Vec<EngineResult<Event>> = match since {
            Some(t) => world.history.iter().filter(|e| e.time_nanos > t).cloned().map(Ok).collect(),
            None => vec![],
        };
        drop(world);
        let live = futures_util::stream::unfold(self.events.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(Err(e)) => return Some((Err(e), rx)),
                    Ok(ok) => return Some((ok, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        // A stream ends at its first error, as a broken connection does.
        futures_util::stream::iter(replay)
            .chain(live)
            .scan(false, |ended, item| {
                if *ended {
                    return futures_util::future::ready(None);
                }
                *ended = item.is_err();
                futures_util::future::ready(Some(item))
            })
            .boxed()
    }

    async fn image(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        let world = self.call("image", reference)?;
        Ok(world.images.get(reference).cloned())
    }

    async fn remove_image(&self, id: &str) -> EngineResult<()> {
        let mut world = self.call("remove_image", id)?;
        world.images.retain(|_, info| info.id != id);
        Ok(())
    }

    async fn pull_image(
        &self,
        reference: &ImageRef,
        progress: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        let mut world = self.call("pull_image", &reference.to_string())?;
        world.pulls.push((reference.repository.clone(), reference.pull_tag().to_string()));
        let full = reference.to_string();
        if !world.pullable.contains(&full) {
            return Err(EngineError::new(EngineErrorKind::NotFound, None, format!("manifest for {full} not found")));
        }
        world.images.insert(full.clone(), ImageInfo { id: "sha256:pulled".into(), labels: Labels::new() });
        drop(world);
        progress("Pull complete");
        Ok(())
    }

    async fn build_image(
        &self,
        build: &ImageBuild,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        let mut world = self.call("build_image", &build.tag)?;
        world.images.insert(
            build.tag.clone(),
            ImageInfo { id: format!("sha256:built-{}", build.tag), labels: build.labels.clone() },
        );
        drop(world);
        output("Step 1/1 : FROM scratch");
        Ok(())
    }
}
