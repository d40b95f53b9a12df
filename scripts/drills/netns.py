"""Network fabric of the drills: one Linux network namespace per node, grouped into regions.

Layout (every bridge lives in a private "hub" namespace, so nothing touches the host's
network and every address is private to the run):

    node ns  eth0 (10.77.1.N/16)  --veth--  dN   in bridge r<R>  (region R data bridge)
    region bridge r<R>  --veth upRa/upRb--  core bridge "core"   (cutting a region = uplink down)
    node ns  mgmt0 (10.78.1.N/16) --veth--  mN   in bridge "mgmt" (isolated ports: nodes cannot
             reach each other over it; only the hub, which holds 10.78.0.1, reaches every API)

The drills' own HTTP calls leave from the hub namespace (the harness enters it with setns), so
the API stays reachable while a region is cut off from the data network.
"""

import ctypes
import os
import re
import signal
import subprocess

PREFIX = "qdrill"
DATA_NET = "10.77.1."
MGMT_NET = "10.78.1."
HUB_MGMT_ADDR = "10.78.0.1"
CLONE_NEWNET = 0x40000000


def sh(*args, check=True):
    """Runs one command; raises with its stderr when it fails and check is set."""
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def list_namespaces():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_namespace(ns):
    """Kills (by pid) every process inside one of our namespaces, then deletes it."""
    for pid in sh("ip", "netns", "pids", ns, check=False).split():
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", ns, check=False)


def clean_leftovers(log=print):
    """Removes namespaces of earlier runs whose harness process is gone (a crashed run)."""
    pattern = re.compile(rf"^{PREFIX}(\d+)-")
    for ns in list_namespaces():
        m = pattern.match(ns)
        if m and not pid_alive(int(m.group(1))):
            log(f"removing leftover namespace {ns}")
            kill_namespace(ns)


def enter_namespace(ns):
    """Moves the calling thread (call it before starting threads) into namespace `ns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Fabric:
    """The namespaces, bridges and links of one run."""

    def __init__(self, regions, nodes_per_region):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.hub = f"{self.tag}-hub"
        self.regions = list(regions)
        self.nodes = []  # (name, region, index)
        n = 0
        for r in self.regions:
            for _ in range(nodes_per_region):
                n += 1
                self.nodes.append((f"n{n:02d}", r, n))
        self.created = []

    def ns(self, name):
        return f"{self.tag}-{name}"

    def data_addr(self, index):
        return f"{DATA_NET}{10 + index}"

    def mgmt_addr(self, index):
        return f"{MGMT_NET}{10 + index}"

    def _hub(self, *args):
        sh("ip", "-n", self.hub, *args)

    def build(self):
        sh("ip", "netns", "add", self.hub)
        self.created.append(self.hub)
        self._hub("link", "set", "lo", "up")
        for br in ["core", "mgmt"]:
            self._hub("link", "add", br, "type", "bridge")
            self._hub("link", "set", br, "up")
        self._hub("addr", "add", f"{HUB_MGMT_ADDR}/16", "dev", "mgmt")
        for i, r in enumerate(self.regions):
            br = f"r{i}"
            self._hub("link", "add", br, "type", "bridge")
            self._hub("link", "set", br, "up")
            self._hub("link", "add", f"up{i}a", "type", "veth", "peer", "name", f"up{i}b")
            self._hub("link", "set", f"up{i}a", "master", br)
            self._hub("link", "set", f"up{i}b", "master", "core")
            self._hub("link", "set", f"up{i}a", "up")
            self._hub("link", "set", f"up{i}b", "up")
        for name, region, index in self.nodes:
            ns = self.ns(name)
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
            br = f"r{self.regions.index(region)}"
            self._hub("link", "add", f"d{index}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._hub("link", "add", f"m{index}", "type", "veth", "peer", "name", "mgmt0", "netns", ns)
            self._hub("link", "set", f"d{index}", "master", br)
            self._hub("link", "set", f"m{index}", "master", "mgmt")
            self._hub("link", "set", "dev", f"m{index}", "type", "bridge_slave", "isolated", "on")
            self._hub("link", "set", f"d{index}", "up")
            self._hub("link", "set", f"m{index}", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.data_addr(index)}/16", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{self.mgmt_addr(index)}/16", "dev", "mgmt0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "mgmt0", "up")

    def cut(self, region):
        """Cuts a region off the data network: its uplink goes down (inside it, links stay)."""
        i = self.regions.index(region)
        self._hub("link", "set", f"up{i}b", "down")
        self._hub("link", "set", f"up{i}a", "down")

    def heal(self, region):
        i = self.regions.index(region)
        self._hub("link", "set", f"up{i}a", "up")
        self._hub("link", "set", f"up{i}b", "up")

    def destroy(self):
        for ns in reversed(self.created):
            kill_namespace(ns)
        self.created = []
