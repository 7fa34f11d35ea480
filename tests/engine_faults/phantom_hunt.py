#!/usr/bin/env python3
"""Hunts Docker 20.10's phantom network endpoint: a network the engine refuses to remove ("has
active endpoints") though no container is attached, until the engine restarts.

Each iteration makes a network and K busybox containers on it, runs one sequence of engine
calls (VARIANT, below) and then removes the network; a refusal with nothing attached is a
phantom. LANES iterations run at once; HOGS=n adds n busy loops (a loaded CI host); PORTS=1
publishes two ports per container (the containers then run httpd), as the framework does.

Run it on a disposable engine only: a phantom stays until that engine restarts. For example
(this repository's second engine):

    NAME=e2e-hunt HOST_IP=10.217.0.1 REMOTE_IP=10.217.0.2 ../shared/engines/remote-engine.sh up
    NAME=e2e-hunt HOST_IP=10.217.0.1 REMOTE_IP=10.217.0.2 ../shared/engines/remote-engine.sh load busybox:1.35
    SOCK=/run/e2e-hunt/docker.sock HOGS=2 python3 tests/engine_faults/phantom_hunt.py disc-rm 30 5 4

usage: phantom_hunt.py VARIANT ITERATIONS [K] [LANES]   (stdlib only; speaks the API on SOCK)
"""
import http.client, json, random, socket, sys, threading, time, os, subprocess

SOCK = os.environ.get("SOCK", "/run/e2e-mine/docker.sock")
LABEL = "hunt.phantom"  # not the framework's label: the hunt's leftovers are its own


class UConn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=120)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(SOCK)
        self.sock = s


def api(method, path, body=None):
    c = UConn()
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, "/v1.41" + path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    out = r.read()
    c.close()
    try:
        j = json.loads(out) if out else None
    except Exception:
        j = out.decode(errors="replace")
    return r.status, j


def net_create(name):
    s, j = api("POST", "/networks/create", {"Name": name, "CheckDuplicate": True, "Labels": {LABEL: "1"}})
    assert s == 201, (s, j)
    return j["Id"]


PORTS = os.environ.get("PORTS") == "1"
# LIKE=1: the framework's create body beyond ports (init, a bind mount, a hostname, two
# aliases) and, in started-rm and logs-rm, a TCP connection to every published port before
# the removal, as its probes make (logs-rm also keeps an event stream open, as an env does).
LIKE = os.environ.get("LIKE") == "1"
SHARED = "/tmp/phantom-hunt-shared"
if LIKE:
    os.makedirs(SHARED, exist_ok=True)


def ctr_create(name, net, cmd=("sleep", "100")):
    host = {"NetworkMode": net}
    if PORTS:  # published on random host ports, as the framework does
        host["PortBindings"] = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}], "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    body = {
        "Image": "busybox:1.35",
        "Cmd": list(cmd),
        "Labels": {LABEL: "1"},
        "ExposedPorts": {"80/tcp": {}, "81/tcp": {}} if PORTS else {},
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {net: {"Aliases": [name]}}},
    }
    if LIKE:
        host["Init"] = True
        host["Binds"] = [f"{SHARED}:/shared"]
        body["Hostname"] = name[-12:]
        body["NetworkingConfig"]["EndpointsConfig"][net]["Aliases"] = [name, name.rsplit("-", 1)[-1]]
    s, j = api("POST", "/containers/create?name=" + name, body)
    assert s == 201, (s, j)
    return j["Id"]


def probe(cid):
    """Connects to the container's published port 80 and closes, as a TCP probe does."""
    s, j = api("GET", f"/containers/{cid}/json")
    bound = ((j.get("NetworkSettings") or {}).get("Ports") or {}).get("80/tcp") if s == 200 else None
    for b in bound or []:
        for _ in range(50):
            try:
                socket.create_connection((b["HostIp"], int(b["HostPort"])), timeout=2).close()
                break
            except OSError:
                time.sleep(0.05)


def bg(fn, *a):
    t = threading.Thread(target=fn, args=a)
    t.start()
    return t


def start(cid):
    return api("POST", f"/containers/{cid}/start")


def rmf(cid):
    return api("DELETE", f"/containers/{cid}?force=true&v=true")


def kill(cid):
    return api("POST", f"/containers/{cid}/kill")


def stop(cid, t=1):
    return api("POST", f"/containers/{cid}/stop?t={t}")


def disconnect(net, cid):
    return api("POST", f"/networks/{net}/disconnect", {"Container": cid, "Force": True})


def connect(net, cid):
    return api("POST", f"/networks/{net}/connect", {"Container": cid})


def follow(cid):
    c = UConn()
    c.request("GET", f"/v1.41/containers/{cid}/logs?follow=1&stdout=1&stderr=1&timestamps=1")
    c.getresponse()
    return c


def events():
    c = UConn()
    c.request("GET", '/v1.41/events?filters=' + json.dumps({"label": [LABEL]}).replace(" ", ""))
    c.getresponse()
    return c


def net_rm(net):
    return api("DELETE", f"/networks/{net}")


def jitter(ms):
    time.sleep(random.uniform(0, ms) / 1000)


def variant(v, net, k):
    """Runs one sequence on network `net` with k containers; returns when all calls answered.
    The containers run `sleep 100`, httpd with PORTS=1, `/no/such/binary` for badcmd."""
    names = [f"hunt-{net[:8]}-{i}" for i in range(k)]
    cmd = ("/no/such/binary",) if v.startswith("badcmd") else ("httpd", "-f", "-p", "80", "-h", "/") if PORTS else ("sleep", "100")
    ids = [ctr_create(n, net, cmd) for n in names]
    ts = []
    if v == "start-rm":  # force removal while the start is in flight
        for c in ids:
            ts.append(bg(start, c))
            ts.append(bg(lambda c=c: (jitter(150), rmf(c))))
    elif v == "started-rm":  # plain: start, then remove all at once
        for t in [bg(start, c) for c in ids]:
            t.join()
        if LIKE and PORTS:
            for t in [bg(probe, c) for c in ids]:
                t.join()
        ts = [bg(rmf, c) for c in ids]
    elif v == "rm-netrm":  # network removal while the containers are being removed
        for t in [bg(start, c) for c in ids]:
            t.join()
        ts = [bg(rmf, c) for c in ids]
        ts.append(bg(lambda: (jitter(50), net_rm(net))))
    elif v == "kill-rm":  # the container dies while it is being removed
        for t in [bg(start, c) for c in ids]:
            t.join()
        for c in ids:
            ts.append(bg(kill, c))
            ts.append(bg(lambda c=c: (jitter(30), rmf(c))))
    elif v == "stop-rm":
        for t in [bg(start, c) for c in ids]:
            t.join()
        for c in ids:
            ts.append(bg(stop, c))
            ts.append(bg(lambda c=c: (jitter(100), rmf(c))))
    elif v == "disc-rm":  # disconnect while removing
        for t in [bg(start, c) for c in ids]:
            t.join()
        for c in ids:
            ts.append(bg(disconnect, net, c))
            ts.append(bg(lambda c=c: (jitter(30), rmf(c))))
    elif v == "disc-seq":  # disconnect answered, then removal
        for t in [bg(start, c) for c in ids]:
            t.join()
        for t in [bg(disconnect, net, c) for c in ids]:
            t.join()
        ts = [bg(rmf, c) for c in ids]
    elif v == "conn-rm":  # disconnected, then reconnect in flight while removing
        for t in [bg(start, c) for c in ids]:
            t.join()
        for t in [bg(disconnect, net, c) for c in ids]:
            t.join()
        for c in ids:
            ts.append(bg(connect, net, c))
            ts.append(bg(lambda c=c: (jitter(30), rmf(c))))
    elif v == "badcmd":  # a start that fails after the network is set up, then removal
        for t in [bg(start, c) for c in ids]:
            t.join()
        ts = [bg(rmf, c) for c in ids]
    elif v == "badcmd-rm":  # the same start failing while the container is being removed
        for c in ids:
            ts.append(bg(start, c))
            ts.append(bg(lambda c=c: (jitter(150), rmf(c))))
    elif v == "kill-then-rm":  # removal just as the engine handles the exit
        for t in [bg(start, c) for c in ids]:
            t.join()
        ts = [bg(lambda c=c: (kill(c), rmf(c))) for c in ids]
    elif v == "logs-rm":  # removal while a log stream of each container is open (the framework follows them)
        for t in [bg(start, c) for c in ids]:
            t.join()
        streams = [follow(c) for c in ids]
        if LIKE:  # the env's event stream too, and the probes
            streams.append(events())
            if PORTS:
                for t in [bg(probe, c) for c in ids]:
                    t.join()
        time.sleep(0.2)
        ts = [bg(rmf, c) for c in ids]
        for t in ts:
            t.join()
        for c in streams:
            c.close()
        ts = []
    elif v == "start-kill":  # the process exits by itself during start, then removal
        for c in ids:
            ts.append(bg(start, c))
            ts.append(bg(lambda c=c: (jitter(150), kill(c))))
        for t in ts:
            t.join()
        ts = [bg(rmf, c) for c in ids]
    elif v == "start-rm-netrm":  # the sweep of a killed process: rm -f all, then the network at once
        for c in ids:
            ts.append(bg(start, c))
        jitter(150)
        rts = [bg(rmf, c) for c in ids]
        for t in rts:
            t.join()
        ts.append(bg(net_rm, net))
    else:
        raise SystemExit(f"unknown variant {v}")
    for t in ts:
        t.join()
    return ids


def load(n):
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]


def main():
    v, iters = sys.argv[1], int(sys.argv[2])
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    lanes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    hogs = load(int(os.environ.get("HOGS", "0")))
    phantoms = []
    lock = threading.Lock()

    def lane(lane_no):
        for i in range(iters):
            name = f"hunt-{v}-{lane_no}-{i}-{random.randrange(1 << 30)}"
            net = net_create(name)
            variant(v, net, k)
            # what is left: wait until no container of this network exists, then remove it
            s, j = net_rm(net)
            if s == 404:
                continue
            if s >= 400:
                time.sleep(1)
                s, j = net_rm(net)
            if s >= 400:
                si, ji = api("GET", f"/networks/{net}")
                attached = ji.get("Containers") if isinstance(ji, dict) else ji
                with lock:
                    phantoms.append((name, s, j, attached))
                print(f"PHANTOM? {v} lane {lane_no} iter {i}: {s} {j} attached={attached}", flush=True)

    t0 = time.time()
    threads = [bg(lane, n) for n in range(lanes)]
    for t in threads:
        t.join()
    for h in hogs:
        h.kill()
    print(f"{v}: {iters}x{lanes} iterations of {k} containers in {time.time()-t0:.0f}s: {len(phantoms)} refused networks", flush=True)


main()
