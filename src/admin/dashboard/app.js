// berty-node dashboard: plain JavaScript, no framework, no build step. Every figure comes from
// the node's /admin/v1/ routes, called with the admin token kept in sessionStorage (this tab
// only). Nothing here writes HTML from data: text goes through textContent.
"use strict";

(() => {
  const TOKEN_KEY = "berty-node-admin-token";
  const REFRESH_MS = 5000;
  const $ = (selector, root = document) => root.querySelector(selector);

  // ---- DOM helpers -------------------------------------------------------------------------

  /** An element with properties (class, text, title, data-*, on*) and children. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(selector, value) {
    $(selector).textContent = value === null || value === undefined ? "—" : String(value);
  }

  function list(selector, items, empty) {
    const ul = $(selector);
    ul.replaceChildren(...(items.length ? items.map((i) => el("li", { text: i })) : [el("li", { class: "none", text: empty })]));
  }

  function pill(text, tone) {
    return el("span", { class: `pill ${tone}`, text });
  }

  function shortId(id) {
    return id && id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id;
  }

  function idCell(id) {
    return el("td", { class: "id", title: id, text: shortId(id) });
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i === 0 ? Math.round(n) : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
  }

  function fmtNumber(n, digits = 0) {
    if (n === null || n === undefined) return "—";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
  }

  function fmtDuration(secs) {
    if (secs === null || secs === undefined) return "—";
    const parts = [];
    const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
    for (const [name, size] of units) {
      const count = Math.floor(secs / size);
      if (count > 0 || (name === "s" && parts.length === 0)) parts.push(`${count} ${name}`);
      secs -= count * size;
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  function fmtAgo(unixSecs) {
    if (!unixSecs) return "—";
    const secs = Math.max(0, Math.round(Date.now() / 1000 - unixSecs));
    return `${fmtDuration(secs)} ago`;
  }

  /** A button that acts on its second click within 4 s (the first one arms it). */
  function confirmButton(label, armedLabel, action) {
    const button = el("button", { type: "button", class: "danger", text: label });
    let timer = null;
    button.addEventListener("click", async () => {
      if (!button.classList.contains("armed")) {
        button.classList.add("armed");
        button.textContent = armedLabel;
        timer = setTimeout(() => { button.classList.remove("armed"); button.textContent = label; }, 4000);
        return;
      }
      clearTimeout(timer);
      button.disabled = true;
      try { await action(); } catch (e) { showError(e); } finally { button.disabled = false; }
    });
    return button;
  }

  // ---- The API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(call, status, reason) {
      super(`${call} failed: ${status ? `${status} ` : ""}${reason}`);
      this.status = status;
      this.reason = reason;
    }
  }

  /** Calls an admin route with the token; 401 goes back to the token prompt. */
  async function api(method, path, body, token = sessionStorage.getItem(TOKEN_KEY)) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const call = `${method} ${path}`;
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(call, 0, `no answer from the node (${e.message})`);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (response.ok) return data;
    const reason = (data && data.error) || response.statusText || "error";
    const error = new ApiError(call, response.status, reason);
    if (response.status === 401 && token) onUnauthorized();
    if (response.status === 404 && reason.startsWith("admin API is off")) showScreen("off");
    throw error;
  }

  // ---- Screens: loading, admin API off, token prompt, the app ------------------------------

  function showScreen(name) {
    for (const id of ["loading", "off", "login", "app"]) $(`#${id}`).hidden = id !== name;
    $("#forget").hidden = name !== "app";
    if (name !== "app") stopRefresh();
  }

  function onUnauthorized() {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("The node refused the token (401). Enter the admin token again.");
  }

  function showLogin(message = "") {
    showScreen("login");
    $("#login-error").textContent = message;
    $("#token").value = "";
    $("#token").focus();
  }

  /** Without a token, /admin/v1/node answers 404 when the admin API is off, 401 when it is on. */
  async function start() {
    if (sessionStorage.getItem(TOKEN_KEY)) return openApp();
    showScreen("loading");
    try {
      await api("GET", "/admin/v1/node", undefined, null);
      openApp();
    } catch (e) {
      if (e.status === 401) showLogin();
      else if (e.status !== 404) showLogin(e.message);
    }
  }

  async function login(event) {
    event.preventDefault();
    const token = $("#token").value.trim();
    if (!token) return;
    $("#login-submit").disabled = true;
    try {
      await api("GET", "/admin/v1/node", undefined, token);
      sessionStorage.setItem(TOKEN_KEY, token);
      openApp();
    } catch (e) {
      if (e.status === 401) showLogin("Wrong token: the node answered 401. Try again.");
      else if (e.status !== 404) showLogin(e.message);
    } finally {
      $("#login-submit").disabled = false;
    }
  }

  // ---- Views and their refresh -------------------------------------------------------------

  const views = {};
  let current = "node";
  let timer = null;

  function openApp() {
    showScreen("app");
    const wanted = location.hash.slice(1);
    select(views[wanted] ? wanted : current);
  }

  function select(name) {
    current = name;
    for (const tab of document.querySelectorAll("#tabs button")) {
      tab.setAttribute("aria-selected", String(tab.dataset.view === name));
    }
    for (const view of document.querySelectorAll(".view")) view.hidden = view.dataset.view !== name;
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    refresh();
  }

  function stopRefresh() {
    clearTimeout(timer);
    timer = null;
  }

  let generation = 0;

  /** Loads the current view now, then again every few seconds while it stays current. */
  async function refresh() {
    stopRefresh();
    const mine = ++generation;
    const name = current;
    const view = views[name];
    try {
      await view.load();
      setViewError(name, "");
      $("#status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e.status !== 401) setViewError(name, e.message);
    }
    if (mine === generation && !$("#app").hidden) timer = setTimeout(refresh, view.every ? view.every() : REFRESH_MS);
  }

  function setViewError(name, message) {
    $(`#view-${name} [data-error]`).textContent = message;
  }

  function showError(e) {
    if (e.status !== 401) setViewError(current, e.message);
  }

  // ---- Node --------------------------------------------------------------------------------

  views.node = {
    async load() {
      const node = await api("GET", "/admin/v1/node");
      setText("#node-peer-id", node.peer_id);
      setText("#node-version", node.version);
      setText("#node-uptime", fmtDuration(node.uptime_secs));
      setText("#node-connected", fmtNumber(node.connected_peers));
      $("#node-title").textContent = `${shortId(node.peer_id)} · v${node.version}`;
      const storage = node.storage;
      setText("#node-storage-backend", storage.backend === "postgres" ? "PostgreSQL" : "SQLite");
      setText("#node-storage-database", storage.database);
      $("#node-storage-health").replaceChildren(
        storage.up ? pill("up", "good") : pill("down", "bad"),
        storage.problem ? el("div", { class: "error", text: storage.problem }) : "",
      );
      const roles = node.roles;
      const relay = roles.relay;
      $("#node-roles").replaceChildren(
        role("Relay", relay.enabled, relay.serving, relay.reason),
        role("Rendezvous", roles.rendezvous.enabled, roles.rendezvous.enabled),
        role("Mirror", roles.mirror.enabled, roles.mirror.enabled),
        role("mDNS", roles.mdns.enabled, roles.mdns.enabled),
      );
      list("#node-listen", node.listen_addrs, "none");
      list("#node-external", node.external_addrs, "none confirmed");
    },
  };

  function role(name, enabled, serving, reason) {
    const state = !enabled ? pill("off", "") : serving ? pill("serving", "good") : pill("on, not serving", "warn");
    return el("li", {}, el("strong", { text: name }), state, reason ? el("span", { class: "muted small", text: reason }) : "");
  }

  // ---- Peers -------------------------------------------------------------------------------

  const peerSort = { key: "peer_id", dir: 1 };
  let lastPeers = null;

  function peerRow(p) {
    const r = p.replication || {};
    return {
      peer: p,
      peer_id: p.peer_id,
      addresses: p.connections.map((c) => `${c.remote_addr} (${c.route}, ${c.direction})`),
      agent: p.agent_version || r.agent_version || "",
      rtt: p.rtt_ms,
      protocols: r.protocols || [],
      groups: r.replicated_groups,
      entries: r.entries_received,
      penalty: r.penalty || "",
    };
  }

  function sortValue(row, key) {
    const v = row[key];
    if (Array.isArray(v)) return key === "protocols" ? v.length : v.join(" ");
    return v === undefined || v === null ? -Infinity : v;
  }

  function renderPeers() {
    const rows = lastPeers.peers.map(peerRow);
    rows.sort((a, b) => {
      const x = sortValue(a, peerSort.key);
      const y = sortValue(b, peerSort.key);
      return (x < y ? -1 : x > y ? 1 : 0) * peerSort.dir;
    });
    for (const th of document.querySelectorAll("#peers-table th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === peerSort.key ? (peerSort.dir > 0 ? "ascending" : "descending") : "none");
    }
    $("#peers-table tbody").replaceChildren(...rows.map((row) => el("tr", { "data-peer": row.peer_id },
      idCell(row.peer_id),
      el("td", {}, el("ul", { class: "addrs" }, row.addresses.map((a) => el("li", { text: a })))),
      el("td", { text: row.agent || "—" }),
      el("td", { class: "num", text: row.rtt === null || row.rtt === undefined ? "—" : `${row.rtt.toFixed(1)} ms` }),
      el("td", { class: "num" }, row.protocols.length
        ? el("details", {}, el("summary", { text: String(row.protocols.length) }),
          el("ul", { class: "addrs" }, row.protocols.map((p) => el("li", { text: p }))))
        : "—"),
      el("td", { class: "num", text: fmtNumber(row.groups) }),
      el("td", { class: "num", text: fmtNumber(row.entries) }),
      el("td", { text: row.penalty || "—" }),
      el("td", {}, confirmButton("Ban", "Confirm ban", async () => {
        await api("POST", `/admin/v1/peers/${encodeURIComponent(row.peer_id)}/ban`);
        await views.peers.load();
      })),
    )));
    $("#peers-count").textContent = String(rows.length);
    $("#peers-empty").hidden = rows.length > 0;
    const refused = lastPeers.refused || [];
    $("#refused-table tbody").replaceChildren(...refused.map((r) => el("tr", { "data-peer": r.peer_id },
      idCell(r.peer_id),
      el("td", { class: "num", text: r.banned_secs_left === null ? "—" : fmtDuration(r.banned_secs_left) }),
      el("td", { text: [r.partitioned && "partitioned (test)", r.direct_refused && "direct refused (test)"].filter(Boolean).join(", ") || "—" }),
      el("td", {}, r.banned_secs_left === null ? "" : el("button", {
        type: "button",
        class: "quiet",
        text: "Unban",
        onclick: async () => {
          try {
            await api("DELETE", `/admin/v1/peers/${encodeURIComponent(r.peer_id)}/ban`);
            await views.peers.load();
          } catch (e) { showError(e); }
        },
      })),
    )));
    $("#refused-empty").hidden = refused.length > 0;
  }

  views.peers = {
    async load() {
      lastPeers = await api("GET", "/admin/v1/peers");
      renderPeers();
    },
  };

  // ---- Relay -------------------------------------------------------------------------------

  views.relay = {
    async load() {
      const r = await api("GET", "/admin/v1/relay");
      $("#relay-state").replaceChildren(
        !r.enabled ? pill("off", "") : r.serving ? pill("serving reservations", "good") : pill("refusing reservations", "warn"),
      );
      setText("#relay-reason", r.reason || "");
      list("#relay-external", r.external_addresses, "none confirmed");
      list("#relay-peers", r.reserved_peers, "none");
      const figures = {
        "active-reservations": r.active_reservations,
        "active-circuits": r.active_circuits,
        "reservations-accepted": r.reservations_accepted,
        "reservations-renewed": r.reservations_renewed,
        "reservations-denied": r.reservations_denied,
        "circuits-accepted": r.circuits_accepted,
        "circuits-denied": r.circuits_denied,
      };
      for (const [id, value] of Object.entries(figures)) setText(`#relay-${id}`, fmtNumber(value));
      setText("#relay-bytes-relayed", fmtBytes(r.bytes_relayed));
    },
  };

  // ---- Rendezvous --------------------------------------------------------------------------

  const PAGE = 50;
  const rdv = { namespace: null, after: 0, history: [], lastId: 0, full: false };

  views.rendezvous = {
    async load() {
      const query = new URLSearchParams({ after: String(rdv.after), limit: String(PAGE) });
      if (rdv.namespace !== null) query.set("namespace", rdv.namespace);
      let namespaces;
      let page;
      try {
        [namespaces, page] = await Promise.all([
          api("GET", "/admin/v1/rendezvous/namespaces"),
          api("GET", `/admin/v1/rendezvous?${query}`),
        ]);
      } catch (e) {
        const off = e.status === 404;
        $("#rendezvous-off").hidden = !off;
        $("#rendezvous-on").hidden = off;
        if (off) return;
        throw e;
      }
      $("#rendezvous-off").hidden = true;
      $("#rendezvous-on").hidden = false;
      const total = namespaces.registrations_total;
      $("#rendezvous-total").textContent = `${fmtNumber(total)} registration${total === 1 ? "" : "s"}`;
      $("#namespaces-table tbody").replaceChildren(...namespaces.namespaces.map((n) => el("tr", {},
        el("td", { class: "id", text: n.namespace }),
        el("td", { class: "num", text: fmtNumber(n.registrations) }),
        el("td", {}, el("button", { type: "button", class: "quiet", text: "Show", onclick: () => filterNamespace(n.namespace) })),
      )));
      $("#namespaces-empty").hidden = namespaces.namespaces.length > 0;
      const regs = page.registrations;
      $("#registrations-table tbody").replaceChildren(...regs.map((r) => el("tr", {},
        el("td", { class: "num", text: String(r.id) }),
        el("td", { class: "id", text: r.namespace }),
        idCell(r.peer_id),
        el("td", {}, el("ul", { class: "addrs" }, r.addresses.map((a) => el("li", { text: a })))),
        el("td", { text: r.record_format }),
        el("td", { class: "num", text: fmtDuration(r.ttl_secs) }),
      )));
      rdv.lastId = regs.length ? regs[regs.length - 1].id : rdv.after;
      rdv.full = regs.length === PAGE;
      $("#registrations-filter").textContent =
        `${rdv.namespace === null ? "every namespace" : `namespace ${rdv.namespace}`}, page ${rdv.history.length + 1}`;
      $("#registrations-next").disabled = !rdv.full;
      $("#registrations-first").disabled = rdv.after === 0;
      $("#registrations-all").disabled = rdv.namespace === null;
    },
  };

  function filterNamespace(namespace) {
    Object.assign(rdv, { namespace, after: 0, history: [] });
    refresh();
  }

  // ---- Mirror ------------------------------------------------------------------------------

  function meter(used, max, text) {
    const share = max > 0 ? Math.min(1, used / max) : 1;
    const tone = share >= 0.95 ? "bad" : share >= 0.8 ? "warn" : "";
    const fill = el("div", { class: `fill ${tone}` });
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    return el("div", { class: "meter", title: `${(share * 100).toFixed(1)}%` },
      el("span", { class: "small", text }), el("div", { class: "bar" }, fill));
  }

  views.mirror = {
    async load() {
      let tokens;
      let groups;
      try {
        [tokens, groups] = await Promise.all([api("GET", "/admin/v1/mirror/tokens"), api("GET", "/admin/v1/mirror/groups")]);
      } catch (e) {
        const off = e.status === 404;
        $("#mirror-off").hidden = !off;
        $("#mirror-on").hidden = off;
        if (off) return;
        throw e;
      }
      $("#mirror-off").hidden = true;
      $("#mirror-on").hidden = false;
      $("#mirror-tokens tbody").replaceChildren(...tokens.map((t) => el("tr", { "data-id": t.id },
        el("td", { class: "id", text: t.id }),
        el("td", { text: t.label || "—" }),
        el("td", {}, meter(t.groups, t.max_groups, `${fmtNumber(t.groups)} / ${fmtNumber(t.max_groups)}`)),
        el("td", {}, meter(t.bytes, t.max_bytes, `${fmtBytes(t.bytes)} / ${fmtBytes(t.max_bytes)}`)),
        el("td", { text: fmtAgo(t.created_at) }),
        el("td", {}, confirmButton("Revoke", "Confirm revoke", async () => {
          await api("DELETE", `/admin/v1/mirror/tokens/${encodeURIComponent(t.id)}`);
          await views.mirror.load();
        })),
      )));
      $("#mirror-tokens-empty").hidden = tokens.length > 0;
      const byId = new Map(tokens.map((t) => [t.id, t]));
      $("#mirror-groups tbody").replaceChildren(...groups.map((g) => {
        const token = byId.get(g.token_id);
        return el("tr", { "data-group": g.group },
          idCell(g.group),
          el("td", { class: "id", text: token && token.label ? `${g.token_id} (${token.label})` : g.token_id }),
          el("td", { class: "num", text: fmtNumber(g.entries) }),
          el("td", { class: "num", text: fmtBytes(g.bytes) }),
          el("td", { text: fmtAgo(g.last_activity) }),
          el("td", {}, token ? meter(token.bytes, token.max_bytes, `${fmtBytes(token.bytes)} / ${fmtBytes(token.max_bytes)}`) : "—"),
        );
      }));
      $("#mirror-groups-empty").hidden = groups.length > 0;
    },
  };

  async function issueToken(event) {
    event.preventDefault();
    const body = {};
    const label = $("#mirror-label").value.trim();
    if (label) body.label = label;
    for (const [field, input] of [["max_groups", "#mirror-max-groups"], ["max_bytes", "#mirror-max-bytes"]]) {
      const value = $(input).value.trim();
      if (value) body[field] = Number(value);
    }
    $("#mirror-issue").disabled = true;
    try {
      const issued = await api("POST", "/admin/v1/mirror/tokens", body);
      $("#mirror-issued-id").textContent = issued.id;
      $("#mirror-new-token").value = issued.token;
      $("#mirror-copy-state").textContent = "";
      $("#mirror-issued").hidden = false;
      $("#mirror-form").reset();
      setViewError("mirror", "");
      await views.mirror.load();
    } catch (e) {
      showError(e);
    } finally {
      $("#mirror-issue").disabled = false;
    }
  }

  async function copyToken() {
    const input = $("#mirror-new-token");
    try {
      await navigator.clipboard.writeText(input.value);
      $("#mirror-copy-state").textContent = "Copied.";
    } catch {
      input.select();
      const copied = document.execCommand && document.execCommand("copy");
      $("#mirror-copy-state").textContent = copied ? "Copied." : "Select the token and copy it by hand.";
    }
  }

  function dismissToken() {
    $("#mirror-new-token").value = "";
    $("#mirror-issued").hidden = true;
  }

  // ---- Charts ------------------------------------------------------------------------------

  const charts = { points: [], period: REFRESH_MS, window: 900, built: false };
  const formats = { bytes: fmtBytes, number: fmtNumber };

  views.charts = {
    every: () => Math.max(1000, charts.period),
    async load() {
      if (!charts.built) {
        window.bertyCharts.build($("#charts"), el);
        charts.built = true;
      }
      const since = charts.points.length ? charts.points[charts.points.length - 1].t : 0;
      const data = await api("GET", `/admin/v1/stats/series?since=${since}`);
      charts.period = data.period_ms;
      charts.window = data.window_secs;
      const points = charts.points.concat(data.points);
      // The node's clock, not this browser's, says what is too old.
      const oldest = points.length ? points[points.length - 1].t - data.window_secs * 1000 : 0;
      charts.points = points.filter((p) => p.t >= oldest);
      for (const chart of window.bertyCharts.CHARTS) {
        window.bertyCharts.draw(chart, charts.points, charts.window, formats);
      }
      $("#charts").dataset.points = String(charts.points.length);
      $("#charts-note").textContent =
        `A sample every ${data.period_ms < 1000 ? `${data.period_ms} ms` : fmtDuration(data.period_ms / 1000)} (admin.stats_period_ms); the node keeps the last ${Math.round(data.window_secs / 60)} minutes.`;
    },
  };

  // ---- Wiring ------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", login);
    $("#off-retry").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); start(); });
    $("#forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
    for (const tab of document.querySelectorAll("#tabs button")) tab.addEventListener("click", () => select(tab.dataset.view));
    for (const th of document.querySelectorAll("#peers-table th[data-sort]")) {
      th.addEventListener("click", () => {
        peerSort.dir = peerSort.key === th.dataset.sort ? -peerSort.dir : 1;
        peerSort.key = th.dataset.sort;
        if (lastPeers) renderPeers();
      });
    }
    $("#registrations-next").addEventListener("click", () => {
      rdv.history.push(rdv.after);
      rdv.after = rdv.lastId;
      refresh();
    });
    $("#registrations-first").addEventListener("click", () => { Object.assign(rdv, { after: 0, history: [] }); refresh(); });
    $("#registrations-all").addEventListener("click", () => filterNamespace(null));
    $("#mirror-form").addEventListener("submit", issueToken);
    $("#mirror-copy").addEventListener("click", copyToken);
    $("#mirror-dismiss").addEventListener("click", dismissToken);
    window.addEventListener("hashchange", () => {
      const wanted = location.hash.slice(1);
      if (views[wanted] && wanted !== current && !$("#app").hidden) select(wanted);
    });
    start();
  });
})();
