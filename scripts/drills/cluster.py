"""A cluster of real qnet-node processes, one per namespace of a Fabric: keys, chain spec,
start/stop/kill -9/restart, and each node's API (REST + JSON-RPC) from the hub namespace."""

import http.client
import json
import os
import signal
import subprocess
import time

P2P_PORT = 9876
API_PORT = 8001


def now_ms():
    return int(time.time() * 1000)


def run(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"qnet-node {' '.join(args)}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def kv_lines(text):
    out = {}
    for line in text.splitlines():
        if " " in line:
            k, v = line.split(" ", 1)
            out[k] = v.strip()
    return out


class Node:
    """One node: its namespace, addresses, data dir, process and logs (one file per start)."""

    def __init__(self, cluster, name, region, index, node_type, producer):
        self.cluster = cluster
        self.name = name
        self.region = region
        self.index = index
        self.node_type = node_type
        self.producer = producer
        self.ns = cluster.fabric.ns(name)
        self.p2p = f"{cluster.fabric.data_addr(index)}:{P2P_PORT}"
        self.api_host = cluster.fabric.mgmt_addr(index)
        self.data_dir = os.path.join(cluster.root, name)
        self.proc = None
        self.starts = 0
        self.public_key = None
        self.node_id = None

    def keygen(self):
        info = kv_lines(run(self.cluster.binary, "keygen", "--data-dir", self.data_dir))
        self.public_key = info["public_key"]
        self.node_id = info["node_id"]

    def log_path(self, start=None):
        return os.path.join(self.cluster.root, "logs", f"{self.name}.{start or self.starts}.log")

    def args(self):
        c = self.cluster
        a = [
            "--node-type", self.node_type,
            "--region", self.region,
            "--data-dir", self.data_dir,
            "--chain", c.spec_path,
            "--p2p-addr", self.p2p,
            "--rpc-addr", f"{self.api_host}:{API_PORT}",
        ]
        # the first node founds the network; the others join through it (any region would do)
        # (with shared_seed_list every node, the seeds included, gets the same list)
        if c.shared_seed_list:
            a += ["--bootstrap-peers", ",".join(c.bootstrap)]
        elif self is not c.nodes[0]:
            a += ["--bootstrap-peers", ",".join(b for b in c.bootstrap if b != self.p2p)]
        a += c.node_flags
        if self.producer:
            a.append("--enable-microblocks")
        return a

    def start(self):
        self.starts += 1
        log = open(self.log_path(), "ab")
        cmd = ["ip", "netns", "exec", self.ns, self.cluster.binary] + self.args()
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        # `ip netns exec` execs the binary, so the pid is the node's own
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code (None when it had to be killed)."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    # --- API -------------------------------------------------------------------------

    def _request(self, method, path, body=None, timeout=3.0):
        conn = http.client.HTTPConnection(self.api_host, API_PORT, timeout=timeout)
        try:
            headers = {"content-type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data
        finally:
            conn.close()

    def get(self, path, timeout=3.0):
        """GET a JSON document; None on any error or non-200 status."""
        try:
            status, data = self._request("GET", path, timeout=timeout)
            if status != 200:
                return None
            return json.loads(data)
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def status_code(self, path):
        try:
            return self._request("GET", path)[0]
        except (OSError, http.client.HTTPException):
            return None

    def rpc(self, method, params):
        """JSON-RPC call; returns (result, error) with None for whichever is absent."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        try:
            status, data = self._request("POST", "/", body=body)
            answer = json.loads(data)
        except (OSError, ValueError, http.client.HTTPException) as e:
            return None, f"transport: {e}"
        return answer.get("result"), answer.get("error")

    def height(self):
        s = self.get("/v1/status")
        if not s or not s.get("head"):
            return None
        return s["head"].get("height")

    def hash_at(self, height):
        b = self.get(f"/v1/blocks/{height}")
        return b.get("hash") if b else None

    def failover(self):
        return self.get("/v1/failover")

    def events_since(self, t0, kind=None):
        f = self.failover()
        if not f:
            return None
        return [e for e in f.get("events", []) if e["at_ms"] >= t0 and (kind is None or e["kind"] == kind)]

    def url(self):
        return f"http://{self.api_host}:{API_PORT}"


class Cluster:
    """Nodes of a Fabric running one chain; the producers are the first `producers_per_region`
    nodes of every region (the first of them a super node)."""

    def __init__(self, fabric, binary, root, slot_ms, node_flags, producers_per_region):
        self.fabric = fabric
        self.binary = binary
        self.root = root
        self.slot_ms = slot_ms
        self.node_flags = node_flags
        os.makedirs(os.path.join(root, "logs"), exist_ok=True)
        os.makedirs(os.path.join(root, "wallets"), exist_ok=True)
        self.nodes = []
        seen = {}
        for name, region, index in fabric.nodes:
            k = seen.get(region, 0)
            seen[region] = k + 1
            node_type = "super" if k == 0 else "full"
            self.nodes.append(Node(self, name, region, index, node_type, k < producers_per_region))
        self.regions = list(fabric.regions)
        self.spec_path = os.path.join(root, "chain.json")
        self.bootstrap = [self.in_region(r)[0].p2p for r in self.regions[:2]]
        self.wallets = {}
        self.producer_order = []
        self.shared_seed_list = False

    def in_region(self, region):
        return [n for n in self.nodes if n.region == region]

    def by_key(self, key):
        return next((n for n in self.nodes if n.public_key == key or n.node_id == key), None)

    def new_wallet(self, name):
        path = os.path.join(self.root, "wallets", f"{name}.key")
        info = kv_lines(run(self.binary, "wallet", "new", "--out", path))
        self.wallets[name] = (path, info["address"])
        return info["address"]

    def write_spec(self, balances):
        for n in self.nodes:
            n.keygen()
        # interleave regions so consecutive slots belong to different regions
        per_region = [[n for n in self.in_region(r) if n.producer] for r in self.regions]
        order = []
        for k in range(max(len(p) for p in per_region)):
            order += [p[k] for p in per_region if k < len(p)]
        self.producer_order = order
        t = now_ms()
        args = [
            "chain-spec", "--chain-id", "drills", "--slot-ms", str(self.slot_ms),
            "--genesis-time-ms", str(t - t % self.slot_ms),
            "--producers", ",".join(n.public_key for n in order),
            "--out", self.spec_path,
        ]
        for addr, amount in balances.items():
            args += ["--balance", f"{addr}={amount}"]
        self.genesis_ms = t - t % self.slot_ms
        return kv_lines(run(self.binary, *args))

    def next_slot_start_ms(self, node, after_ms):
        """Start of `node`'s next slot after `after_ms`."""
        n = len(self.producer_order)
        p = self.producer_order.index(node)
        slot = (after_ms - self.genesis_ms) // self.slot_ms + 1
        while slot % n != p:
            slot += 1
        return self.genesis_ms + slot * self.slot_ms

    def send(self, wallet, to, amount, via):
        """`qnet-node wallet send` through `via`; returns the tx hash or None when refused."""
        path, _ = self.wallets[wallet]
        p = subprocess.run(
            [self.binary, "wallet", "send", "--key", path, "--to", to, "--amount", str(amount),
             "--rpc", via.url()],
            capture_output=True, text=True, timeout=30,
        )
        if p.returncode != 0:
            return None, (p.stderr.strip() or p.stdout.strip())
        return p.stdout.strip().splitlines()[0], None

    def stop_all(self):
        for n in self.nodes:
            if n.running():
                n.kill9()
