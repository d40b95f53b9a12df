#!/usr/bin/env python3
"""Fault drills of qnet-node (DESIGN §11) on a real cluster in network namespaces.

  1 one region cut off      no failover on the connected side, region_lost, chain continues
  2 two regions cut off     failover activates once on the surviving side, gradual restoration
                            after heal, one head everywhere, every accepted transfer included once
  3 kill -9 a producer 20x  the store reopens cleanly each time and the node catches up
  4 rolling restart         the network never loses its head for more than a few slots

Needs root (ip netns). Usage: drills.py --binary target/release/qnet-node [--drills 1,2,3,4]
Every node's logs (one file per start) and the API answers stay under target/drills/<run>/.
Exit code 0 when every invariant held, 1 otherwise.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import Cluster, now_ms  # noqa: E402
from netns import Fabric, clean_leftovers, enter_namespace  # noqa: E402

REGIONS = ["eu", "na", "asia", "sa"]
FUNDS = 1_000_000_000


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_until(pred, timeout, step=0.5):
    """Polls `pred` until it returns something truthy; returns it, or None after `timeout` s."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            return None
        time.sleep(step)


class Drill:
    """Outcome of one drill: broken invariants and measured figures."""

    def __init__(self, number, title):
        self.number = number
        self.title = title
        self.failures = []
        self.figures = {}
        self.started = time.time()
        self.seconds = 0.0

    def fail(self, msg):
        log(f"INVARIANT BROKEN in drill {self.number}: {msg}")
        self.failures.append(msg)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def fig(self, key, value):
        self.figures[key] = value
        log(f"  {key} = {value}")

    @property
    def ok(self):
        return not self.failures


class Ctx:
    def __init__(self, args, cluster, fabric, run_dir):
        self.args = args
        self.c = cluster
        self.fabric = fabric
        self.run_dir = run_dir
        self.slot_s = args.slot_ms / 1000
        self.fo_s = args.failover_interval_s
        self.spent = {}  # wallet name -> total amount + fees of accepted transfers
        self.txs = {}  # hash -> (sender, recipient address, amount)

    def up(self):
        return [n for n in self.c.nodes if n.running()]

    def snapshot(self, label):
        """Stores every node's API answers under <run>/api/<label>/."""
        d = os.path.join(self.run_dir, "api", label)
        os.makedirs(d, exist_ok=True)
        for n in self.c.nodes:
            doc = {p: n.get(p) for p in ["/v1/status", "/v1/topology", "/v1/failover", "/v1/regions",
                                          "/v1/blocks/latest"]}
            doc["rpc node_status"] = n.rpc("node_status", [])[0]
            with open(os.path.join(d, f"{n.name}.json"), "w") as f:
                json.dump(doc, f, indent=1)


# --- shared checks -------------------------------------------------------------------


def one_head(nodes, spread=3):
    """(height, hash) when every node has the same hash at the lowest head height and no head
    is more than `spread` blocks ahead; else None."""
    heights = {}
    for n in nodes:
        h = n.height()
        if h is None:
            return None
        heights[n.name] = h
    low = min(heights.values())
    if max(heights.values()) - low > spread:
        return None
    hashes = {n.hash_at(low) for n in nodes}
    if len(hashes) != 1 or None in hashes:
        return None
    return low, hashes.pop()


def describe_heads(nodes):
    parts = []
    for n in nodes:
        s = n.get("/v1/status") or {}
        head = s.get("head") or {}
        parts.append(f"{n.name}({n.region}) h={head.get('height')} {str(head.get('hash'))[:10]}")
    return ", ".join(parts)


def failover_off_everywhere(nodes):
    for n in nodes:
        f = n.failover()
        if f is None or f.get("active"):
            return False
    return True


def all_regions_live(nodes, regions):
    for n in nodes:
        r = n.get("/v1/regions")
        if not r:
            return False
        live = {x["region"] for x in r.get("regions", []) if x.get("live", 0) > 0}
        if not set(regions) <= live:
            return False
    return True


def settle(ctx, d, timeout=150):
    """After a heal: every node on one head, every region live everywhere, failover off."""
    t = time.time()
    nodes = ctx.c.nodes
    head = wait_until(lambda: one_head(nodes), timeout)
    if not d.check(head is not None, f"nodes not on one head {timeout}s after heal: {describe_heads(nodes)}"):
        return False
    d.fig("heal_to_one_head_s", round(time.time() - t, 1))
    live = wait_until(lambda: all_regions_live(nodes, ctx.c.regions), timeout)
    d.check(live, "some node does not see every region live after heal")
    off = wait_until(lambda: failover_off_everywhere(nodes), timeout)
    if d.check(off, f"failover still active somewhere {timeout}s after heal"):
        d.fig("heal_to_failover_off_everywhere_s", round(time.time() - t, 1))
    return bool(head and off)


def send_round(ctx, d, wallets, recipient_of, via_of, amount):
    for w in wallets:
        h, err = ctx.c.send(w, recipient_of[w], amount, via_of[w])
        if h is None:
            log(f"  transfer from {w} refused: {err}")
            continue
        ctx.txs[h] = (w, recipient_of[w], amount)
        ctx.spent[w] = ctx.spent.get(w, 0) + amount + 1
        yield h


def check_transfers(ctx, d, hashes, recipients, from_height, timeout=90):
    """Every accepted transfer included exactly once on every node; nonces and balances exact."""
    nodes = ctx.c.nodes

    def included_everywhere():
        for n in nodes:
            for h in hashes:
                tx, _ = n.rpc("tx_get", [h])
                if not tx or tx.get("status") != "included":
                    return False
        return True

    t = time.time()
    if not d.check(wait_until(included_everywhere, timeout, step=1.0),
                   f"some accepted transfer not included on every node after {timeout}s"):
        for h in hashes:
            states = {n.name: (n.rpc("tx_get", [h])[0] or {}).get("status") for n in nodes}
            if any(s != "included" for s in states.values()):
                d.fail(f"transfer {h[:16]} from {ctx.txs[h][0]}: {states}")
        return
    d.fig("transfers_included_everywhere_after_s", round(time.time() - t, 1))
    # count every transfer on the canonical chain of one node, block by block
    ref = nodes[0]
    top = ref.height() or 0
    seen = {}
    h = from_height
    while h <= top:
        blocks, err = ref.rpc("chain_getBlocks", [h, 100])
        if not blocks:
            d.fail(f"chain_getBlocks {h} failed on {ref.name}: {err}")
            return
        for b in blocks:
            for tx in b.get("txs", []):
                seen[tx] = seen.get(tx, 0) + 1
        h = blocks[-1]["height"] + 1
    for x in hashes:
        d.check(seen.get(x, 0) == 1, f"transfer {x[:16]} is in the chain {seen.get(x, 0)} times")
    d.fig("transfers_checked", len(hashes))
    # every node: same inclusion height, exact nonces and balances
    for x in hashes:
        heights = {n.name: (n.rpc("tx_get", [x])[0] or {}).get("block_height") for n in nodes}
        d.check(len(set(heights.values())) == 1, f"transfer {x[:16]} at different heights: {heights}")
    counts = {}
    for (w, _, _) in ctx.txs.values():
        counts[w] = counts.get(w, 0) + 1
    for w, n_sent in counts.items():
        addr = ctx.c.wallets[w][1]
        for n in nodes:
            acct, _ = n.rpc("account_get", [addr])
            acct = acct or {}
            d.check(acct.get("nonce") == n_sent, f"{n.name}: nonce of {w} is {acct.get('nonce')}, sent {n_sent}")
            d.check(acct.get("balance") == FUNDS - ctx.spent[w],
                    f"{n.name}: balance of {w} is {acct.get('balance')}, expected {FUNDS - ctx.spent[w]}")
    for addr in recipients:
        expected = sum(a for (_, r, a) in ctx.txs.values() if r == addr)
        for n in nodes:
            acct, _ = n.rpc("account_get", [addr])
            got = (acct or {}).get("balance")
            d.check(got == expected, f"{n.name}: recipient {addr[:12]} has {got}, expected {expected}")


# --- drills --------------------------------------------------------------------------


def drill_one_region(ctx):
    d = Drill(1, "one region cut off")
    c = ctx.c
    lost = c.regions[-1]
    out = c.in_region(lost)
    rest = [n for n in c.nodes if n.region != lost]
    t0 = now_ms()
    h0 = max(n.height() or 0 for n in rest)
    log(f"drill 1: cutting {lost} off")
    ctx.fabric.cut(lost)
    cut_at = time.time()

    def lost_seen():
        for n in rest:
            ev = n.events_since(t0, "region_lost")
            if not ev or not any(lost in e["regions"] for e in ev):
                return False
        return True

    if d.check(wait_until(lost_seen, 30 + 4 * ctx.fo_s), f"region_lost {lost} not reported by every connected node"):
        d.fig("cut_to_region_lost_everywhere_s", round(time.time() - cut_at, 1))
    # keep it cut for two more failover checks and watch that failover never turns on
    end = time.time() + 2 * ctx.fo_s + 2
    active_seen = set()
    while time.time() < end:
        for n in rest:
            f = n.failover()
            if f and f.get("active"):
                active_seen.add(n.name)
        time.sleep(1.0)
    d.check(not active_seen, f"failover active on connected nodes {sorted(active_seen)} with one region missing")
    for n in rest:
        ev = n.events_since(t0, "activated") or []
        d.check(not ev, f"{n.name}: failover activated with one region missing: {ev}")
        f = n.failover() or {}
        d.check(lost in f.get("missing_regions", []), f"{n.name}: {lost} not in missing_regions {f.get('missing_regions')}")
    h1 = max(n.height() or 0 for n in rest)
    d.fig("blocks_on_connected_side_during_cut", h1 - h0)
    d.fig("cut_seconds", round(time.time() - cut_at, 1))
    expected = (time.time() - cut_at) / ctx.slot_s * 0.5
    d.check(h1 - h0 >= expected, f"chain stalled on the connected side: {h1 - h0} blocks in {time.time() - cut_at:.0f}s")
    d.check(wait_until(lambda: one_head(rest), 30) is not None,
            f"connected side not on one head during the cut: {describe_heads(rest)}")
    # the cut-off region sees every other region missing: by design it activates failover
    for n in out:
        ev = n.events_since(t0, "activated") or []
        d.check(len(ev) == 1, f"{n.name} (cut off, sees {len(c.regions) - 1} regions missing) activated failover {len(ev)} times, design says once")
    ctx.snapshot("drill1-cut")
    log(f"drill 1: healing {lost}")
    ctx.fabric.heal(lost)
    settle(ctx, d)
    for n in rest:
        ev = n.events_since(t0, "region_returned") or []
        d.check(any(lost in e["regions"] for e in ev), f"{n.name}: no region_returned for {lost}")
    ctx.snapshot("drill1-healed")
    return d


def drill_two_regions(ctx):
    d = Drill(2, "two regions cut off, heal")
    c = ctx.c
    lost = c.regions[-2:]
    surv = [n for n in c.nodes if n.region not in lost]
    cut_nodes = [n for n in c.nodes if n.region in lost]
    wallets = [f"acct-{r}" for r in c.regions]
    recipient_of = {w: c.new_wallet(f"rcpt2-{w}") for w in wallets}
    # each account sends through a full node (not a producer) of its own region
    via_of = {f"acct-{r}": c.in_region(r)[-1] for r in c.regions}
    from_height = max(n.height() or 0 for n in c.nodes)
    t0 = now_ms()
    hashes = []
    hashes += list(send_round(ctx, d, wallets, recipient_of, via_of, 11))
    hashes += list(send_round(ctx, d, wallets, recipient_of, via_of, 12))
    log(f"drill 2: cutting {lost} off ({len(hashes)} transfers sent just before)")
    for r in lost:
        ctx.fabric.cut(r)
    cut_at = time.time()

    def activated_on_survivors():
        for n in surv:
            if not n.events_since(t0, "activated"):
                return False
        return True

    # transfers during the partition, on both sides
    for k in range(3):
        time.sleep(3)
        hashes += list(send_round(ctx, d, wallets, recipient_of, via_of, 20 + k))
    if d.check(wait_until(activated_on_survivors, 30 + 4 * ctx.fo_s), "failover did not activate on every surviving node"):
        d.fig("cut_to_failover_active_on_survivors_s", round(time.time() - cut_at, 1))
    # one more check interval: it must stay on, and not activate again
    time.sleep(ctx.fo_s + 1)
    for n in surv:
        f = n.failover() or {}
        d.check(f.get("active"), f"{n.name}: failover not active with {lost} cut off")
        d.check(sorted(f.get("missing_regions", [])) == sorted(lost),
                f"{n.name}: missing_regions {f.get('missing_regions')}, expected {sorted(lost)}")
        ev = n.events_since(t0, "activated") or []
        if ev:
            d.check(sorted(ev[0]["regions"]) == sorted(lost), f"{n.name}: activated for {ev[0]['regions']}")
    # the cut-off side: each region alone sees every other region missing, so by design it
    # activates failover too, and its producers keep extending their own branch
    for n in cut_nodes:
        ev = n.events_since(t0, "activated") or []
        d.check(len(ev) == 1, f"{n.name} (cut off) activated failover {len(ev)} times, design says once")
    side_heights = {r: max(n.height() or 0 for n in c.in_region(r)) for r in c.regions}
    d.fig("heights_at_heal_by_region", side_heights)
    for r in lost:
        d.check(side_heights[r] > from_height, f"cut-off region {r} stopped producing its own branch")
    d.fig("partition_seconds", round(time.time() - cut_at, 1))
    # where the cut-off side included its own transfers: blocks that the heal must undo
    on_branch = {}
    for x, (w, _, _) in ctx.txs.items():
        if x not in hashes or w not in {f"acct-{r}" for r in lost}:
            continue
        via = via_of[w]
        tx, _ = via.rpc("tx_get", [x])
        if tx and tx.get("status") == "included":
            on_branch[x] = (via, tx["block_height"], via.hash_at(tx["block_height"]))
    d.fig("cut_off_transfers_in_branch_blocks", len(on_branch))
    ctx.snapshot("drill2-cut")
    reorgs_before = {n.name: metric(n, "qnet_reorgs_total") for n in cut_nodes}
    log(f"drill 2: healing {lost}")
    heal_ms = now_ms()
    for r in lost:
        ctx.fabric.heal(r)
    settle(ctx, d)
    window_ms = int(ctx.fo_s * 1000)
    for n in surv:
        act = n.events_since(t0, "activated") or []
        d.check(len(act) == 1, f"{n.name}: failover activated {len(act)} times, expected exactly once")
        ret = [e for e in (n.events_since(heal_ms, "region_returned") or []) if set(e["regions"]) & set(lost)]
        returned = {r for e in ret for r in e["regions"]}
        d.check(returned >= set(lost), f"{n.name}: region_returned only for {sorted(returned)}")
        deact = n.events_since(heal_ms, "deactivated") or []
        if d.check(len(deact) == 1, f"{n.name}: {len(deact)} deactivations after heal, expected 1") and ret:
            first_return = min(e["at_ms"] for e in ret)
            gap = deact[0]["at_ms"] - first_return
            d.check(gap >= window_ms,
                    f"{n.name}: failover deactivated {gap} ms after the first return, before the {window_ms} ms restoration window")
    reorgs = {n.name: metric(n, "qnet_reorgs_total") - reorgs_before[n.name] for n in cut_nodes}
    d.fig("reorgs_on_cut_off_nodes_after_heal", reorgs)
    check_transfers(ctx, d, hashes, list(recipient_of.values()), from_height)
    # a transfer whose branch block was undone by the reorg went back to the mempool and was
    # included again on the winning chain
    reincluded = 0
    for x, (via, h, block_hash) in on_branch.items():
        if via.hash_at(h) != block_hash:
            tx, _ = via.rpc("tx_get", [x])
            reincluded += bool(tx and tx.get("status") == "included")
    d.fig("cut_off_transfers_reincluded_after_reorg", reincluded)
    d.check(reincluded > 0, "no transfer of the cut-off side went through undo and re-inclusion (drill too weak)")
    ctx.snapshot("drill2-healed")
    return d


def metric(node, series):
    try:
        status, data = node._request("GET", "/metrics")
    except OSError:
        return 0.0
    for line in data.decode(errors="replace").splitlines():
        if line.startswith(series + " ") or line.startswith(series + "{"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except ValueError:
                return 0.0
    return 0.0


def drill_kill9(ctx):
    d = Drill(3, "kill -9 a producer 20 times")
    c = ctx.c
    victim = next(n for n in c.in_region(c.regions[1]) if n.producer)
    refs = [n for n in c.nodes if n is not victim]
    ref = refs[0]
    reopen_s, catchup_s, lost_blocks, behind = [], [], [], []
    rng = random.Random(8)
    for i in range(ctx.args.kills):
        # kill inside its own slot (while it builds and announces) or at a random moment
        if i % 2 == 0:
            target = c.next_slot_start_ms(victim, now_ms() + 200) + rng.randint(0, ctx.args.slot_ms // 2)
        else:
            target = now_ms() + rng.randint(0, 2 * ctx.args.slot_ms)
        time.sleep(max(0, target - now_ms()) / 1000)
        before = victim.height()
        victim.kill9()
        # stay down for up to 3 slots, so the others move on and it has blocks to fetch
        time.sleep(rng.uniform(0.2, 3.0) * ctx.slot_s)
        victim.start()
        started = time.time()

        def api_up():
            if not victim.running():
                return "exited"
            return victim.height() is not None

        up = wait_until(api_up, 30, step=0.1)
        if up == "exited" or not up:
            tail = open(victim.log_path()).read()[-600:]
            d.fail(f"kill {i + 1}: store did not reopen (exit {victim.proc.poll()}): {tail}")
            break
        reopen_s.append(time.time() - started)
        after = victim.height()
        if before is not None:
            lost_blocks.append(max(0, before - after))
        log_text = open(victim.log_path(), errors="replace").read()
        for bad in ["panicked", "fatal", "corrupt"]:
            d.check(bad not in log_text, f"kill {i + 1}: '{bad}' in {victim.log_path()}")
        target_h = max(n.height() or 0 for n in refs)
        behind.append(max(0, target_h - (after or 0)))

        def caught_up():
            h = victim.height()
            return h is not None and h >= target_h and victim.hash_at(target_h) == ref.hash_at(target_h)

        if not d.check(wait_until(caught_up, 40, step=0.2),
                       f"kill {i + 1}: node did not catch up to {target_h}: {describe_heads([victim, ref])}"):
            break
        catchup_s.append(time.time() - started)
    d.fig("kills", len(reopen_s))
    if reopen_s:
        d.fig("start_to_api_s_max", round(max(reopen_s), 2))
        d.fig("blocks_behind_after_reopen_max", max(behind) if behind else 0)
        d.fig("restarts_that_had_to_fetch_blocks", sum(1 for b in behind if b > 0))
        d.fig("start_to_caught_up_s_mean", round(sum(catchup_s) / max(1, len(catchup_s)), 2))
        d.fig("start_to_caught_up_s_max", round(max(catchup_s), 2) if catchup_s else None)
        d.fig("blocks_lost_on_reopen_max", max(lost_blocks) if lost_blocks else 0)
    d.check(len(catchup_s) == ctx.args.kills, f"only {len(catchup_s)} of {ctx.args.kills} kill/restart cycles completed")
    # after the last restart it produces again: a block of its own lands on the common chain
    start_h = victim.height() or 0
    rounds = len(c.producer_order) * ctx.slot_s

    def produced_again():
        top = ref.height() or 0
        if top <= start_h:
            return False
        blocks, _ = ref.rpc("chain_getBlocks", [start_h + 1, 100])
        return any(c.by_key(b.get("producer")) is victim for b in blocks or [])

    d.check(wait_until(produced_again, 3 * rounds + 10), f"{victim.name} produced no block on the common chain after its last restart")
    d.check(wait_until(lambda: one_head(c.nodes), 30) is not None, f"not one head after drill 3: {describe_heads(c.nodes)}")
    return d


class HeadWatch(threading.Thread):
    """Samples every node's head; the longest time a running node saw no new head."""

    def __init__(self, nodes, period):
        super().__init__(daemon=True)
        self.nodes = nodes
        self.period = period
        self.excluded = set()
        self.lock = threading.Lock()
        self.track = {}
        self.max_stall = (0.0, None, None)
        self.net_last = (None, time.time())
        self.max_net_gap = 0.0
        self.stop_flag = threading.Event()

    def exclude(self, name):
        with self.lock:
            self.excluded.add(name)
            self.track.pop(name, None)

    def include(self, name):
        with self.lock:
            self.excluded.discard(name)

    def run(self):
        while not self.stop_flag.is_set():
            now = time.time()
            top = None
            for n in self.nodes:
                with self.lock:
                    if n.name in self.excluded:
                        continue
                h = n.height()
                if h is None:
                    continue
                top = h if top is None else max(top, h)
                with self.lock:
                    last = self.track.get(n.name)
                    if last is None or h > last[0]:
                        self.track[n.name] = (h, now)
                    else:
                        stall = now - last[1]
                        if stall > self.max_stall[0]:
                            self.max_stall = (stall, n.name, h)
            if top is not None:
                if self.net_last[0] is None or top > self.net_last[0]:
                    self.net_last = (top, now)
                else:
                    self.max_net_gap = max(self.max_net_gap, now - self.net_last[1])
            time.sleep(self.period)


def drill_rolling(ctx):
    d = Drill(4, "rolling restart of every node")
    c = ctx.c
    watch = HeadWatch(c.nodes, 0.2)
    watch.start()
    restart_s = []
    from_height = max(n.height() or 0 for n in c.nodes)
    recipient = c.new_wallet("rcpt4")
    hashes = []
    try:
        for n in c.nodes:
            watch.exclude(n.name)
            t = time.time()
            code = n.stop()
            d.check(code == 0, f"{n.name}: exit code {code} on SIGTERM, expected 0")
            n.start()
            # a wallet that submits to the node as soon as its API answers (links not up yet)
            if wait_until(lambda: n.status_code("/health/live") == 200, 30, step=0.1):
                hashes += list(send_round(ctx, d, [f"roll-{n.name}"], {f"roll-{n.name}": recipient}, {f"roll-{n.name}": n}, 7))

            def back():
                if not n.running():
                    return "exited"
                if n.status_code("/health/ready") != 200:
                    return False
                top = max(m.height() or 0 for m in c.nodes if m is not n)
                h = n.height()
                return h is not None and h >= top - 1

            ok = wait_until(back, 60, step=0.2)
            if not d.check(ok is True, f"{n.name} not ready and caught up 60s after restart ({ok})"):
                break
            restart_s.append(time.time() - t)
            # its own head counts again once it is back
            watch.include(n.name)
    finally:
        watch.stop_flag.set()
        watch.join()
    stall, who, at = watch.max_stall
    d.fig("restarts", len(restart_s))
    if restart_s:
        d.fig("stop_to_ready_s_max", round(max(restart_s), 1))
    d.fig("max_head_stall_s", round(stall, 2))
    d.fig("max_head_stall_slots", round(stall / ctx.slot_s, 1))
    d.fig("max_head_stall_node", f"{who} at height {at}")
    d.fig("max_network_head_gap_s", round(watch.max_net_gap, 2))
    limit = ctx.args.max_stall_slots * ctx.slot_s
    d.check(stall <= limit, f"{who} saw no new head for {stall:.1f}s (> {ctx.args.max_stall_slots} slots) at height {at}")
    d.check(wait_until(lambda: one_head(c.nodes), 30) is not None, f"not one head after drill 4: {describe_heads(c.nodes)}")
    d.fig("transfers_sent_to_just_restarted_nodes", len(hashes))
    d.check(len(hashes) == len(c.nodes), f"only {len(hashes)} of {len(c.nodes)} transfers to restarted nodes accepted")
    check_transfers(ctx, d, hashes, [recipient], from_height, timeout=60)
    return d


DRILLS = {1: drill_one_region, 2: drill_two_regions, 3: drill_kill9, 4: drill_rolling}


# --- main ----------------------------------------------------------------------------


def start_cluster(ctx):
    c = ctx.c
    t = time.time()
    rest = c.nodes
    if not c.shared_seed_list:
        c.nodes[0].start()
        if not wait_until(lambda: c.nodes[0].status_code("/health/live") == 200, 30, step=0.2):
            raise RuntimeError(f"founder {c.nodes[0].name} did not start")
        rest = c.nodes[1:]
    for n in rest:
        n.start()
        time.sleep(0.1)
    ready = wait_until(lambda: all(n.status_code("/health/ready") == 200 for n in c.nodes), 90)
    if not ready:
        raise RuntimeError("cluster not ready after 90s: " + describe_heads(c.nodes))
    if not wait_until(lambda: all_regions_live(c.nodes, c.regions), 90):
        raise RuntimeError("not every node sees every region live after 90s")
    if not wait_until(lambda: one_head(c.nodes), 60):
        raise RuntimeError("cluster not on one head after 60s: " + describe_heads(c.nodes))
    # a couple of failover checks with every region live, so no drill starts in a transition
    if not wait_until(lambda: failover_off_everywhere(c.nodes), 60):
        raise RuntimeError("failover active on a fresh cluster")
    log(f"cluster up: {len(c.nodes)} nodes in {len(c.regions)} regions, ready after {time.time() - t:.1f}s")


def write_report(run_dir, results, args, total_s):
    summary = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": " ".join(sys.argv),
        "nodes": args.regions * args.nodes_per_region,
        "regions": args.regions,
        "slot_ms": args.slot_ms,
        "failover_interval_s": args.failover_interval_s,
        "total_seconds": round(total_s, 1),
        "drills": [
            {"drill": d.number, "title": d.title, "ok": d.ok, "seconds": round(d.seconds, 1),
             "failures": d.failures, "figures": d.figures}
            for d in results
        ],
    }
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\n| drill | result | seconds | figures |")
    print("|---|---|---|---|")
    for d in results:
        figs = ", ".join(f"{k}={v}" for k, v in d.figures.items())
        print(f"| {d.number} {d.title} | {'pass' if d.ok else 'FAIL'} | {d.seconds:.0f} | {figs} |")
    for d in results:
        for msg in d.failures:
            print(f"drill {d.number} broke: {msg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--out", default="target/drills")
    ap.add_argument("--drills", default="1,2,3,4")
    ap.add_argument("--regions", type=int, default=4)
    ap.add_argument("--nodes-per-region", type=int, default=3)
    ap.add_argument("--producers-per-region", type=int, default=2)
    ap.add_argument("--slot-ms", type=int, default=1000)
    ap.add_argument("--regional-interval-s", type=int, default=5)
    ap.add_argument("--failover-interval-s", type=int, default=10)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--max-stall-slots", type=float, default=5)
    ap.add_argument("--keep-data", action="store_true", help="keep node data dirs after a green run")
    ap.add_argument("--shared-seed-list", action="store_true",
                    help="start every node at once with the same --bootstrap-peers (the seeds included)")
    ap.add_argument("--node-flag", action="append", default=[],
                    help="extra flag for every node (e.g. --node-flag=--min-failed-regions=1 to see drill 1 fail)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("drills need root (ip netns)", file=sys.stderr)
        return 2
    if not 3 <= args.regions <= len(REGIONS):
        print(f"--regions must be 3..{len(REGIONS)}", file=sys.stderr)
        return 2
    binary = os.path.abspath(args.binary)
    run_dir = os.path.abspath(os.path.join(args.out, time.strftime("run-%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"))
    os.makedirs(run_dir)
    log(f"run dir {run_dir}")

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    clean_leftovers(log)
    fabric = Fabric(REGIONS[: args.regions], args.nodes_per_region)
    flags = [
        "--gossip-interval", "500ms",
        "--regional-monitor-interval", f"{args.regional_interval_s}s",
        "--failover-monitor-interval", f"{args.failover_interval_s}s",
        "--strategy-settle-time", "2s",
        "--dead-node-grace-period", "60s",
    ] + args.node_flag
    cluster = Cluster(fabric, binary, run_dir, args.slot_ms, flags, args.producers_per_region)
    cluster.shared_seed_list = args.shared_seed_list
    results = []
    started = time.time()
    setup_error = None
    try:
        fabric.build()
        enter_namespace(fabric.hub)
        balances = {cluster.new_wallet(f"acct-{r}"): FUNDS for r in cluster.regions}
        balances.update({cluster.new_wallet(f"roll-{n.name}"): FUNDS for n in cluster.nodes})
        cluster.write_spec(balances)
        ctx = Ctx(args, cluster, fabric, run_dir)
        start_cluster(ctx)
        ctx.snapshot("start")
        for k in [int(x) for x in args.drills.split(",") if x.strip()]:
            log(f"== drill {k}")
            t = time.time()
            try:
                d = DRILLS[k](ctx)
            except Exception as e:  # a crash of the harness fails the drill, with the trace
                d = Drill(k, DRILLS[k].__name__)
                d.fail(f"harness error: {e!r}\n{traceback.format_exc()}")
            d.seconds = time.time() - t
            results.append(d)
            log(f"drill {k}: {'pass' if d.ok else 'FAIL'} in {d.seconds:.0f}s")
            if not d.ok:
                ctx.snapshot(f"drill{k}-failed")
                # let a later drill start from a whole network
                for r in cluster.regions:
                    fabric.heal(r)
                for n in cluster.nodes:
                    if not n.running():
                        n.start()
    except BaseException as e:
        setup_error = f"{e!r}"
        log(f"harness stopped: {setup_error}")
        traceback.print_exc()
    finally:
        for n in cluster.nodes:
            if n.running():
                os.kill(n.proc.pid, signal.SIGTERM)
        for n in cluster.nodes:
            n.stop(timeout=10)
        fabric.destroy()
    total = time.time() - started
    if setup_error:
        d = Drill(0, "cluster setup")
        d.fail(setup_error)
        results.append(d)
    write_report(run_dir, results, args, total)
    ok = all(d.ok for d in results) and results
    if ok and not args.keep_data:
        for n in cluster.nodes:
            shutil.rmtree(n.data_dir, ignore_errors=True)
    log(f"{'all drills passed' if ok else 'DRILLS FAILED'} in {total:.0f}s; logs under {run_dir}/logs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
