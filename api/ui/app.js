"use strict";
// The node's page. It polls the REST routes of the node that served it, follows new heads
// over the JSON-RPC WebSocket on the same port, and builds the DOM from text nodes only:
// node ids and region names come from gossip, so they never become markup.

const POLL_MS = 2000;
const BLOCKS_SHOWN = 10;
const EVENTS_SHOWN = 10;
const CALL_TIMEOUT_MS = 5000;
const WS_RETRY_MAX_MS = 10000;
const HEALTH_WARNING = 0.8;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  status: null,
  regions: null,
  topology: null,
  failover: null,
  // the first failed call of the last poll, or null
  error: null,
  lastAnswerMs: 0,
  polled: false,
  head: null,
  blocks: [],
  blocksError: null,
  ws: "waiting",
  wsRetryMs: 1000,
};

// ---------- DOM helpers ----------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, attrs);
  append(node, children);
  return node;
}

function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren();
  append(node, children);
  return node;
}

function kv(pairs) {
  return pairs.map(([key, value]) => [el("dt", { text: key }), el("dd", null, value)]);
}

function badge(text, tone) {
  return el("span", { class: "badge badge-" + tone, text });
}

function chips(list, tone) {
  if (!list || list.length === 0) return el("span", { class: "muted", text: "none" });
  return el("span", { class: "chips" }, list.map((item) => badge(item, tone)));
}

function short(text, head = 8, tail = 4) {
  const s = String(text || "");
  if (s.length <= head + tail + 1) return s;
  return s.slice(0, head) + "…" + (tail > 0 ? s.slice(-tail) : "");
}

function mono(text, full) {
  return el("code", { class: "mono", title: full || text, text });
}

function searchLink(label, query, full) {
  return el("button", {
    class: "link mono",
    type: "button",
    title: full || query,
    text: label,
    onclick: () => search(String(query)),
  });
}

function clock(ms) {
  if (!ms) return "–";
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function percent(x) {
  return Math.round(x * 100) + "%";
}

function words(snake) {
  return String(snake || "").replace(/_/g, " ");
}

// ---------- calls ----------

class CallError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (e) {
    throw new CallError(0, "unreachable", e && e.name === "TimeoutError"
      ? "no answer within " + CALL_TIMEOUT_MS / 1000 + " s"
      : "cannot reach the node");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.error;
    throw new CallError(
      response.status,
      detail ? detail.code : "http_" + response.status,
      detail ? detail.message : response.statusText || "error " + response.status,
    );
  }
  return body;
}

// ---------- polling ----------

const POLLED = ["status", "regions", "topology", "failover"];
let following = false;

async function poll() {
  const results = await Promise.allSettled(POLLED.map((name) => getJson("/v1/" + name)));
  let error = null;
  results.forEach((result, i) => {
    if (result.status === "fulfilled") state[POLLED[i]] = result.value;
    else error = error || result.reason;
  });
  state.error = error;
  state.polled = true;
  if (!error) state.lastAnswerMs = Date.now();
  const head = state.status && state.status.head;
  if (head && (!state.head || head.height > state.head.height)) setHead(head);
  // the WebSocket waits for a first answer, so a starting node is not asked for upgrades
  if (!error && !following) {
    following = true;
    followHeads();
  }
  render();
  setTimeout(poll, POLL_MS);
}

// ---------- heads and blocks ----------

let blocksLoading = false;
let blocksWanted = false;

function setHead(head) {
  state.head = head;
  renderHead();
  loadBlocks();
}

async function loadBlocks() {
  if (blocksLoading) {
    blocksWanted = true;
    return;
  }
  blocksLoading = true;
  do {
    blocksWanted = false;
    const top = state.head ? state.head.height : 0;
    const from = Math.max(0, top - BLOCKS_SHOWN + 1);
    try {
      const answer = await getJson("/v1/blocks?from=" + from + "&limit=" + BLOCKS_SHOWN);
      state.blocks = answer.blocks.slice().reverse();
      state.blocksError = null;
    } catch (e) {
      state.blocksError = e;
    }
    renderBlocks();
  } while (blocksWanted);
  blocksLoading = false;
}

function followHeads() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/");
  state.ws = "connecting";
  renderConn();
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({
      jsonrpc: "2.0", id: 1, method: "chain_subscribeNewHeads", params: [],
    }));
  });
  socket.addEventListener("message", (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (msg.id === 1) {
      state.ws = msg.error ? "refused" : "open";
      if (msg.error) socket.close();
      else state.wsRetryMs = 1000;
      renderConn();
      return;
    }
    if (msg.method === "chain_newHead" && msg.params && msg.params.result) {
      setHead(msg.params.result);
    }
  });
  socket.addEventListener("close", () => {
    state.ws = state.ws === "refused" ? "refused" : "closed";
    renderConn();
    setTimeout(followHeads, state.wsRetryMs);
    state.wsRetryMs = Math.min(WS_RETRY_MAX_MS, state.wsRetryMs * 2);
  });
}

// ---------- rendering ----------

function render() {
  renderConn();
  renderBanner();
  renderNode();
  renderRegions();
  renderGraph();
  renderRouting();
  renderFailover();
  renderHead();
}

function renderConn() {
  const conn = document.getElementById("conn");
  let text = "connecting";
  let tone = "muted";
  if (state.error && state.error.code === "starting") {
    text = "starting";
    tone = "warn";
  } else if (state.error) {
    text = "offline";
    tone = "bad";
  } else if (state.polled && state.ws === "open") {
    text = "live";
    tone = "ok";
  } else if (state.polled) {
    text = "polling";
    tone = "warn";
  }
  conn.textContent = text;
  conn.className = "pill pill-" + tone;
  conn.title = state.ws === "open"
    ? "REST polled every " + POLL_MS / 1000 + " s; new heads over the WebSocket"
    : "REST polled every " + POLL_MS / 1000 + " s; WebSocket " + state.ws;
  fill("heads-source", state.ws === "open" ? "live over the WebSocket" : "WebSocket " + state.ws);
}

function renderBanner() {
  const banner = document.getElementById("banner");
  let text = null;
  let tone = "info";
  const e = state.error;
  const s = state.status;
  const f = state.failover;
  if (!state.polled) {
    text = "Connecting to the node…";
  } else if (e && e.code === "starting") {
    text = "The node is starting: " + e.message + ". This page fills in by itself once it is up.";
    tone = "warn";
  } else if (e) {
    const last = state.lastAnswerMs ? "; the figures below are from " + clock(state.lastAnswerMs) : "";
    const what = e.status ? "the node answered " + e.status + " " + e.code + ": " + e.message : e.message;
    text = "A call failed (" + what + "). Retrying every " + POLL_MS / 1000 + " s" + last + ".";
    tone = "bad";
  } else if (f && f.active) {
    text = "Conservative failover is active: regions " + f.missing_regions.join(", ")
      + " are missing; cross-region traffic goes through every live bridge.";
    tone = "bad";
  } else if (s && !s.ready) {
    text = s.syncing
      ? "The node is syncing the chain; it is not ready yet."
      : "The node is joining the network; it is not ready yet.";
    tone = "warn";
  }
  banner.hidden = text === null;
  banner.className = "banner banner-" + tone;
  banner.textContent = text || "";
  document.body.classList.toggle("stale", Boolean(e));
}

function renderNode() {
  const s = state.status;
  if (!s) {
    const e = state.error;
    const what = !e ? "connecting to the node" : e.code === "starting" ? "node starting" : "node unreachable";
    fill("node-line", what);
    return;
  }
  fill("node-line",
    el("span", { class: "strong", text: "node " }), mono(s.node_id),
    el("span", { class: "sep", text: "·" }), s.node_type,
    el("span", { class: "sep", text: "·" }), "region ", el("span", { class: "strong", text: s.region }),
    el("span", { class: "sep", text: "·" }), s.chain_id);
  fill("node", kv([
    ["id", mono(s.node_id)],
    ["type", s.node_type],
    ["region", s.region],
    ["version", s.version],
    ["chain", s.chain_id],
    ["ready", s.ready ? badge("ready", "ok") : badge("not ready", "warn")],
    ["syncing", s.syncing ? badge("syncing", "warn") : badge("in sync", "ok")],
    ["live peers", String(s.peers_live)],
  ]));
}

// Missing comes from the membership view (regions) or the last failover check; restoring
// only from the failover monitor, which alone knows the restoration window.
function regionState(region) {
  const f = state.failover;
  if (region.missing || (f && f.missing_regions.includes(region.region))) return "missing";
  if (f && f.restoring_regions.includes(region.region)) return "restoring";
  if (region.health < HEALTH_WARNING) return "degraded";
  return "healthy";
}

const STATE_TONE = { healthy: "ok", degraded: "warn", restoring: "info", missing: "bad" };

function sortedRegions() {
  const list = state.regions ? state.regions.regions.slice() : [];
  const own = state.status && state.status.region;
  return list.sort((a, b) => (b.region === own) - (a.region === own) || a.region.localeCompare(b.region));
}

function renderRegions() {
  const r = state.regions;
  if (!r) return;
  const known = r.regions.reduce((n, x) => n + x.known, 0);
  const live = r.regions.reduce((n, x) => n + x.live, 0);
  fill("health-score", "network health ", el("span", { class: "strong", text: percent(r.health_score) }),
    " · " + live + " of " + known + " members live");
  const own = state.status && state.status.region;
  const tiles = sortedRegions().map((region) => {
    const st = regionState(region);
    return el("article", { class: "region region-" + st, "data-region": region.region, "data-state": st },
      el("div", { class: "region-head" },
        el("span", { class: "region-name", text: region.region }),
        region.region === own ? el("span", { class: "muted small", text: "this node" }) : null,
        badge(st, STATE_TONE[st])),
      meter(region.health, STATE_TONE[st]),
      el("div", { class: "region-stats" },
        el("span", { class: "strong", text: region.live + " / " + region.known }), " live",
        el("span", { class: "sep", text: "·" }), "health " + percent(region.health)),
      el("div", { class: "region-bridges" },
        el("span", { class: "muted", text: region.bridges.length === 1 ? "bridge " : "bridges " }),
        region.bridges.length === 0
          ? el("span", { class: "muted", text: "none" })
          : region.bridges.map((id) => mono(id))));
  });
  if (tiles.length === 0) fill("regions", el("p", { class: "empty", text: "no region known yet" }));
  else fill("regions", tiles);
}

function meter(value, tone) {
  const width = Math.max(0, Math.min(1, value)) * 100;
  return svg("svg", { class: "meter", viewBox: "0 0 100 6", preserveAspectRatio: "none", "aria-hidden": "true" },
    svg("rect", { class: "meter-track", x: 0, y: 0, width: 100, height: 6, rx: 3 }),
    svg("rect", { class: "meter-fill tone-" + tone, x: 0, y: 0, width, height: 6, rx: 3 }));
}

// The API reports the links this node's router has planned (peer, region, kind) and whether
// each one's data-plane connection is open: an edge is solid when every link to that region
// is open, dashed while any is only planned.
function renderGraph() {
  const t = state.topology;
  const s = state.status;
  if (!t || !s || !state.regions) return;
  const regions = sortedRegions();
  const own = s.region;
  const W = 360;
  const H = 250;
  const cx = W / 2;
  const cy = H / 2 + 4;
  const radius = regions.length > 1 ? 88 : 0;
  const pos = new Map();
  regions.forEach((region, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / regions.length;
    pos.set(region.region, { x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle) });
  });
  const cross = new Map();
  let inRegion = 0;
  let inRegionOpen = 0;
  for (const link of t.links) {
    if (link.kind === "in_region") {
      inRegion += 1;
      if (link.state === "open") inRegionOpen += 1;
    } else {
      const c = cross.get(link.region) || { count: 0, open: 0 };
      c.count += 1;
      if (link.state === "open") c.open += 1;
      cross.set(link.region, c);
    }
  }
  const edges = [];
  const from = pos.get(own);
  for (const [region, { count, open }] of cross) {
    const to = pos.get(region);
    if (!from || !to) continue;
    // the label sits beside the middle of the edge, on the side away from the centre
    const mx = (from.x + to.x) / 2;
    const my = (from.y + to.y) / 2;
    const len = Math.hypot(to.x - from.x, to.y - from.y) || 1;
    let nx = (from.y - to.y) / len;
    let ny = (to.x - from.x) / len;
    if (nx * (mx - cx) + ny * (my - cy) < 0) {
      nx = -nx;
      ny = -ny;
    }
    const allOpen = open === count;
    const label = allOpen ? "open" : open > 0 ? open + " of " + count + " open" : "planned";
    edges.push(svg("g", { class: "edge", "data-region": region, "data-state": allOpen ? "open" : "planned" },
      svg("line", { x1: from.x, y1: from.y, x2: to.x, y2: to.y, class: allOpen ? "edge-open" : "edge-planned" }),
      svg("text", { x: mx + nx * 14, y: my + ny * 14 + 4, class: "edge-label",
        "text-anchor": nx > 0.3 ? "start" : nx < -0.3 ? "end" : "middle" },
        label + (allOpen && count > 1 ? " ×" + count : ""))));
  }
  const vertices = regions.map((region) => {
    const p = pos.get(region.region);
    const st = regionState(region);
    return svg("g", { class: "vertex vertex-" + st + (region.region === own ? " vertex-own" : ""),
      "data-region": region.region },
      svg("circle", { cx: p.x, cy: p.y, r: 27 }),
      svg("text", { x: p.x, y: p.y - 1, "text-anchor": "middle", class: "vertex-name" }, region.region),
      svg("text", { x: p.x, y: p.y + 13, "text-anchor": "middle", class: "vertex-count" },
        region.live + "/" + region.known),
      st === "healthy" ? null : svg("text", { x: p.x, y: p.y + 42, "text-anchor": "middle",
        class: "vertex-state tone-" + STATE_TONE[st] }, st),
      svg("title", null, region.region + ": " + st + ", " + region.live + " of " + region.known + " live"));
  });
  const caption = from
    ? svg("text", { x: from.x + 34, y: from.y + 4, "text-anchor": "start", class: "edge-label" },
      inRegion + " in-region link" + (inRegion === 1 ? "" : "s") + ", " + inRegionOpen + " open")
    : null;
  fill("graph", svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-label": "regions and the cross-region links this node plans" }, edges, vertices, caption));

  let note;
  if (cross.size > 0) {
    note = "Links this node's router plans under " + words(t.strategy)
      + " (from /v1/topology): solid once every connection to that region is open, dashed while one is only planned.";
  } else if (regions.length > 1) {
    note = "This node plans no cross-region link: traffic to other regions goes through the bridges of "
      + own + ".";
  } else {
    note = "One region: no cross-region links.";
  }
  fill("graph-note", note);
  fill("links", t.links.length === 0
    ? el("li", { class: "empty", text: "no links planned" })
    : t.links.slice().sort((a, b) => a.kind.localeCompare(b.kind) || a.region.localeCompare(b.region))
      .map((link) => el("li", null,
        badge(link.kind === "bridge" ? "bridge" : "in region", link.kind === "bridge" ? "accent" : "muted"),
        mono(link.peer),
        el("span", { class: "muted", text: link.region }),
        el("span", { class: link.state === "open" ? "small link-open" : "muted small", text: link.state }))));
}

function renderRouting() {
  const t = state.topology;
  if (!t) return;
  const bridges = Object.entries(t.bridges);
  fill("routing", kv([
    ["strategy", el("span", null, el("span", { class: "strong", text: words(t.strategy) }), " ",
      el("code", { class: "mono muted", text: t.strategy }))],
    ["since", t.since_ms ? clock(t.since_ms) + " (" + ago(t.since_ms) + ")" : "–"],
    ["live regions", chips(t.live_regions, "ok")],
    ["bridges", bridges.length === 0 ? el("span", { class: "muted", text: "none" })
      : el("span", { class: "bridge-list" }, bridges.map(([region, ids]) => el("span", null,
        el("span", { class: "strong", text: region + " " }), ids.map((id) => mono(id)))))],
  ]));
}

const EVENT_TONE = { activated: "bad", deactivated: "ok", region_lost: "warn", region_returned: "info" };

function renderFailover() {
  const f = state.failover;
  if (!f) return;
  fill("failover-badge", f.active ? badge("active", "bad") : badge("inactive", "ok"));
  fill("failover", kv([
    ["missing", chips(f.missing_regions, "bad")],
    ["restoring", chips(f.restoring_regions, "info")],
    ["last check", f.last_check_ms ? clock(f.last_check_ms) + " (" + ago(f.last_check_ms) + ")" : "not yet"],
  ]));
  const events = f.events.slice(-EVENTS_SHOWN).reverse();
  fill("events", events.length === 0
    ? el("li", { class: "empty", text: "no failover events" })
    : events.map((event) => el("li", null,
      el("span", { class: "muted mono", text: clock(event.at_ms) }),
      badge(words(event.kind), EVENT_TONE[event.kind] || "muted"),
      event.regions.join(", "))));
}

function renderHead() {
  const h = state.head;
  if (!h) return;
  fill("head-height", String(h.height));
  fill("head-meta",
    el("div", null, "hash ", searchLink(short(h.hash), h.hash, h.hash)),
    el("div", { class: "muted", text: "slot " + h.slot + " · " + clock(h.timestamp_ms) + " · " + ago(h.timestamp_ms) }));
}

function renderBlocks() {
  if (state.blocksError && state.blocks.length === 0) {
    fill("blocks", el("tr", null, el("td", { colspan: 5, class: "empty",
      text: "cannot load blocks: " + state.blocksError.message })));
    return;
  }
  fill("blocks", state.blocks.map((b) => el("tr", null,
    el("td", null, searchLink(String(b.height), b.height)),
    el("td", { class: "clip" }, searchLink(short(b.hash, 8, 0), b.hash, b.hash)),
    el("td", { class: "clip" }, mono(short(b.producer, 8, 0), b.producer)),
    el("td", { class: "muted", text: clock(b.timestamp_ms) }),
    el("td", { class: "num", text: String(b.tx_count) }))));
}

// ---------- search ----------

const HASH = /^(0x)?[0-9a-f]{64}$/i;
const ADDRESS = /^q[0-9a-f]{48}$/i;

async function search(query) {
  const q = query.trim();
  document.getElementById("search-input").value = q;
  const card = document.getElementById("result-card");
  card.hidden = false;
  if (q === "") {
    card.hidden = true;
    return;
  }
  fill("result-title", "Searching " + short(q, 16, 6) + "…");
  fill("result");
  try {
    if (/^\d+$/.test(q)) {
      showBlock(await getJson("/v1/blocks/" + q + "?full_txs=true"));
    } else if (HASH.test(q)) {
      const hash = q.replace(/^0x/i, "").toLowerCase();
      const block = await getJson("/v1/blocks/hash/" + hash + "?full_txs=true").catch((e) => {
        if (e.status === 404) return null;
        throw e;
      });
      if (block) showBlock(block);
      else showTx(await getJson("/v1/txs/" + hash));
    } else if (ADDRESS.test(q)) {
      showAccount(await getJson("/v1/accounts/" + q));
    } else {
      fill("result-title", "Nothing to look up");
      fill("result", el("p", { class: "muted",
        text: "Enter a block height, a 64-hex block or transfer hash, or an address (q + 48 hex)." }));
    }
  } catch (e) {
    fill("result-title", e.status === 404 ? "Not found" : "Search failed");
    fill("result", el("p", { class: e.status === 404 ? "muted" : "error-text",
      text: e.status === 404 ? "No block, transfer or account matches " + q + "." : e.message }));
  }
}

function showBlock(b) {
  fill("result-title", "Block " + b.height);
  const txs = Array.isArray(b.txs) ? b.txs : [];
  fill("result",
    el("dl", { class: "kv" }, kv([
      ["hash", mono(b.hash)],
      ["parent", searchLink(b.parent_hash, b.parent_hash)],
      ["slot", String(b.slot)],
      ["time", new Date(b.timestamp_ms).toLocaleString([], { hour12: false }) + " (" + ago(b.timestamp_ms) + ")"],
      ["producer", mono(b.producer)],
      ["transfers", String(b.tx_count)],
    ])),
    txs.length === 0 ? null : el("div", { class: "table-wrap" }, el("table", { class: "blocks" },
      el("thead", null, el("tr", null, ["hash", "from", "to", "amount", "fee"].map((h) => el("th", { text: h })))),
      el("tbody", null, txs.map((tx) => el("tr", null,
        el("td", null, searchLink(short(tx.hash, 8, 0), tx.hash, tx.hash)),
        el("td", null, searchLink(short(tx.from, 8, 0), tx.from, tx.from)),
        el("td", null, searchLink(short(tx.to, 8, 0), tx.to, tx.to)),
        el("td", { class: "num", text: String(tx.amount) }),
        el("td", { class: "num", text: String(tx.fee) })))))));
}

function showTx(tx) {
  fill("result-title", "Transfer " + short(tx.hash));
  fill("result", el("dl", { class: "kv" }, kv([
    ["hash", mono(tx.hash)],
    ["status", badge(tx.status, tx.status === "included" ? "ok" : "warn")],
    ["block", tx.block_height === null || tx.block_height === undefined ? "–" : searchLink(String(tx.block_height), tx.block_height)],
    ["from", searchLink(tx.from, tx.from)],
    ["to", searchLink(tx.to, tx.to)],
    ["amount", String(tx.amount)],
    ["fee", String(tx.fee)],
    ["nonce", String(tx.nonce)],
  ])));
}

function showAccount(a) {
  fill("result-title", "Account " + short(a.address, 10, 4));
  fill("result", el("dl", { class: "kv" }, kv([
    ["address", mono(a.address)],
    ["balance", String(a.balance)],
    ["nonce", String(a.nonce)],
    ["pending nonce", String(a.pending_nonce)],
  ])));
}

// ---------- start ----------

function start() {
  fill("origin", location.origin);
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    search(document.getElementById("search-input").value);
  });
  document.getElementById("result-close").addEventListener("click", () => {
    document.getElementById("result-card").hidden = true;
  });
  // relative times ("12 s ago") move on between polls
  setInterval(() => {
    renderHead();
    renderRouting();
    renderFailover();
  }, 1000);
  poll();
}

start();
