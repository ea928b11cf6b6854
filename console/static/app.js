// homesearch console: plain JS, no build step. Talks only to the console's own JSON API (/api/*),
// which holds the gateway API key. The SearchResponse arrives as generic JSON (proto field names):
// fields the proto gains later (facets, regions, ...) are rendered when present (see renderFacets,
// renderRegions) and any other unknown field is listed under "Other response fields".
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c.nodeType ? c : String(c));
  return node;
};
const fmt = (x, d = 3) => (typeof x === "number" ? x.toFixed(d) : x ?? "");
const photoUrl = (pid) => `/photos/0/${encodeURIComponent(pid)}`;

const KNOWN_RESPONSE = new Set(["hits", "cache_hit", "model_version", "took_ms", "request_id", "query_language",
  "index_generation", "facets", "regions"]);
const KNOWN_HIT = new Set(["product_id", "score", "title", "category", "signal_scores", "price", "image_uri", "explanation"]);
const SIGNAL_ORDER = ["text", "image", "lexical"];

const state = { photo: null, photoUrl: null, page: 0, mode: "query", similarTo: null, info: null, last: null };

// ------------------------------------------------------------------ boot
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#search-form").addEventListener("submit", (e) => { e.preventDefault(); state.page = 0; state.mode = "query"; runSearch(); });
  $("#photo-input").addEventListener("change", (e) => e.target.files[0] && setPhoto(e.target.files[0]));
  $("#photo-clear").addEventListener("click", () => setPhoto(null));
  const dz = $("#dropzone");
  ["dragenter", "dragover"].forEach((t) => document.addEventListener(t, (e) => { e.preventDefault(); dz.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => document.addEventListener(t, (e) => { e.preventDefault(); dz.classList.remove("over"); }));
  document.addEventListener("drop", (e) => { const f = e.dataTransfer?.files?.[0]; if (f) setPhoto(f); });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === "file");
    if (item) { e.preventDefault(); setPhoto(item.getAsFile()); }
  });
  ["#f-min", "#f-max", "#f-attr-val"].forEach((s) => $(s).addEventListener("change", refilter));
  ["#f-stock", "#f-fusion", "#f-pagesize"].forEach((s) => $(s).addEventListener("change", refilter));
  $("#f-attr-key").addEventListener("change", () => $("#f-attr-val").value.trim() && refilter());
  $("#f-reset").addEventListener("click", resetFilters);
  $("#prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); runSearch(); });
  $("#next").addEventListener("click", () => { state.page += 1; runSearch(); });
  $("#drawer-close").addEventListener("click", () => ($("#drawer").hidden = true));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("#drawer").hidden = true; });
  $("#inspect-form").addEventListener("submit", (e) => { e.preventDefault(); startInspection(); });
  loadInfo();
  loadQuerySets();
  pollHealth();
});

function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${name}`));
}

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  let body = null;
  try { body = await r.json(); } catch { body = { error: { source: "console", message: `HTTP ${r.status}` } }; }
  if (!r.ok && !body.error) body.error = { source: "console", message: `HTTP ${r.status}` };
  return body;
}

async function pollHealth() {
  const pill = $("#gateway-status");
  try {
    const h = await getJSON("/healthz");
    const ok = h.gateway === "serving";
    pill.textContent = ok ? "gateway serving" : "gateway not serving";
    pill.className = "pill " + (ok ? "ok" : "down");
  } catch { pill.textContent = "console unreachable"; pill.className = "pill down"; }
  setTimeout(pollHealth, 10000);
}

async function loadInfo() {
  const info = await getJSON("/api/info");
  state.info = info;
  const cats = $("#f-categories");
  cats.replaceChildren(...(info.catalog?.categories || []).map((c) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", value: c.value, onchange: refilter }), c.value,
      el("span", { class: "count", "data-cat": c.value, "data-catalog": c.count, title: "products in the catalog" }, c.count))));
  const keys = $("#f-attr-key");
  (info.catalog?.attribute_keys || []).forEach((k) => keys.append(el("option", { value: k }, k)));
  if (!info.catalog?.products) $("#empty").textContent += " (No catalog loaded: start the console with --catalog to see product photos.)";
}

// ------------------------------------------------------------------ query photo
function setPhoto(file) {
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photo = file;
  state.photoUrl = file ? URL.createObjectURL(file) : null;
  const img = $("#photo-preview");
  img.hidden = !file;
  $("#photo-clear").hidden = !file;
  $("#drop-label").textContent = file ? "" : "+ photo";
  if (file) { img.src = state.photoUrl; img.title = file.name || "pasted photo"; } else { img.removeAttribute("src"); $("#photo-input").value = ""; }
}

// ------------------------------------------------------------------ search
function filterObject() {
  const f = {};
  const cats = [...document.querySelectorAll("#f-categories input:checked")].map((i) => i.value);
  if (cats.length) f.categories = cats;
  const min = $("#f-min").value, max = $("#f-max").value;
  if (min !== "") f.min_price = Number(min);
  if (max !== "") f.max_price = Number(max);
  if ($("#f-stock").checked) f.in_stock_only = true;
  const k = $("#f-attr-key").value, v = $("#f-attr-val").value.trim();
  if (k && v) f.attributes = { [k]: v };
  return f;
}

function pageSize() { return Number($("#f-pagesize").value) || 24; }

function requestObject() {
  // facets: counts per category and price bucket over the filtered catalog, for the sidebar
  const req = { text: $("#q").value.trim(), top_k: pageSize(), offset: state.page * pageSize(), explain: true,
    filter: filterObject(), facets: { categories: true, price_edges: [50, 100, 250, 500, 1000] } };
  const fusion = $("#f-fusion").value;
  if (fusion) req.fusion = { method: fusion };
  return req;
}

function refilter() { if (state.last) { state.page = 0; runSearch(); } }

function resetFilters() {
  document.querySelectorAll("#f-categories input").forEach((i) => (i.checked = false));
  ["#f-min", "#f-max", "#f-attr-val"].forEach((s) => ($(s).value = ""));
  $("#f-stock").checked = false; $("#f-attr-key").value = ""; $("#f-fusion").value = "";
  refilter();
}

function showError(box, err) {
  if (!err) { box.hidden = true; box.replaceChildren(); return; }
  const what = { gateway: "Gateway error", upload: "Photo not accepted", request: "Bad request", console: "Console error" }[err.source] || "Error";
  box.replaceChildren(el("strong", {}, what + (err.code ? " " : ": ")), err.code ? el("code", {}, err.code) : "",
    err.code ? ": " : "", err.message || "");
  box.hidden = false;
}

async function runSearch() {
  const req = requestObject();
  let body;
  const btn = $("#search-btn");
  btn.disabled = true;
  try {
    if (state.mode === "similar") {
      body = await getJSON("/api/similar", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ product_id: state.similarTo.id, request: { top_k: req.top_k, offset: req.offset, filter: req.filter } }) });
    } else {
      if (!req.text && !state.photo) { showError($("#error"), { source: "request", message: "type a query or add a photo" }); return; }
      const form = new FormData();
      form.append("request", JSON.stringify(req));
      if (state.photo) form.append("image", state.photo, state.photo.name || "pasted.png");
      body = await getJSON("/api/search", { method: "POST", body: form });
    }
  } catch (e) {
    body = { error: { source: "console", message: String(e) } };
  } finally { btn.disabled = false; }
  showError($("#error"), body.error);
  if (body.error) {
    if (body.error.source === "upload") setPhoto(null); // the page keeps working without the bad photo
    return;
  }
  state.last = body;
  render(body);
}

function render(body) {
  const resp = body.response;
  $("#empty").hidden = true;
  renderBadges(body);
  renderFacets(resp.facets);
  renderRegions(resp.regions, body.products);
  renderGrid(resp.hits || [], body.products, resp);
  renderExtras(resp);
  const pager = $("#pager");
  pager.hidden = false;
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = (resp.hits || []).length < pageSize();
  $("#page-label").textContent = `page ${state.page + 1}`;
}

function renderBadges(body) {
  const r = body.response;
  const b = [];
  if (state.mode === "similar") b.push(el("span", { class: "badge" }, `similar to ${state.similarTo.title}`));
  b.push(el("span", { class: "badge", id: "badge-latency", title: "server-side time (took_ms)" }, `${fmt(r.took_ms, 1)} ms server`));
  b.push(el("span", { class: "badge", title: "console → gateway → console" }, `${fmt(body.round_trip_ms, 0)} ms round trip`));
  b.push(el("span", { class: "badge " + (r.cache_hit ? "hit" : "miss"), id: "badge-cache" }, r.cache_hit ? "cache hit" : "cache miss"));
  if (r.query_language) b.push(el("span", { class: "badge", id: "badge-lang" }, `language ${r.query_language}`));
  b.push(el("span", { class: "badge" }, `${(r.hits || []).length} hits`));
  if (r.model_version) b.push(el("span", { class: "badge", title: "model version" }, r.model_version));
  if (r.request_id) b.push(el("span", { class: "badge muted", title: "request id" }, r.request_id));
  $("#badges").replaceChildren(...b);
}

function cardFor(hit, rank, products, resp) {
  const p = products[hit.product_id] || {};
  const photo = p.photo_url
    ? el("img", { src: p.photo_url, alt: hit.title || hit.product_id, loading: "lazy" })
    : el("span", { class: "nophoto" }, "no photo in the console's catalog");
  const price = hit.price !== undefined && hit.price !== null ? `${fmt(hit.price, 2)} ${p.currency || ""}`.trim() : "";
  return el("article", { class: "card", "data-product": hit.product_id },
    el("div", { class: "photo" }, photo),
    el("div", { class: "body" },
      el("span", { class: "rank" }, `#${rank} · ${hit.product_id}`),
      el("span", { class: "title" }, hit.title || p.title || hit.product_id),
      el("span", { class: "cat" }, hit.category || p.category || ""),
      el("div", { class: "meta" }, el("span", { class: "price" }, price), el("span", { class: "score" }, `score ${fmt(hit.score)}`)),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "ghost explain-btn", onclick: () => openExplain(hit, rank, p, resp) }, "Explain"),
        el("button", { type: "button", class: "ghost similar-btn", onclick: () => findSimilar(hit, p) }, "Similar"))));
}

function renderGrid(hits, products, resp) {
  const offset = state.page * pageSize();
  $("#grid").replaceChildren(...hits.map((h, i) => cardFor(h, offset + i + 1, products, resp)));
  if (!hits.length) $("#grid").append(el("p", { class: "muted" }, "No hits. Loosen the filters or try other words."));
}

function findSimilar(hit, product) {
  state.mode = "similar";
  state.similarTo = { id: hit.product_id, title: hit.title || product.title || hit.product_id };
  state.page = 0;
  runSearch();
}

// ------------------------------------------------------------------ explain
function parseExplanation(text) {
  const parts = (text || "").split(/;\s*/).map((s) => s.trim()).filter(Boolean);
  const translation = parts.find((p) => /^(zh→en|en→zh)/.test(p));
  return { parts, translation };
}

function signalRows(scores) {
  const names = Object.keys(scores || {}).filter((k) => !k.endsWith("_norm"));
  names.sort((a, b) => (SIGNAL_ORDER.indexOf(a) + 1 || 99) - (SIGNAL_ORDER.indexOf(b) + 1 || 99));
  for (const s of SIGNAL_ORDER) if (!names.includes(s)) names.push(s);
  return names.map((name) => {
    const raw = scores?.[name], norm = scores?.[`${name}_norm`];
    const width = norm !== undefined ? norm : raw !== undefined ? Math.max(0, Math.min(1, raw)) : 0;
    const label = raw === undefined ? "not a candidate" : `${fmt(raw)}${norm !== undefined ? ` · ${fmt(norm, 2)}` : ""}`;
    return [el("span", {}, name), el("div", { class: `bar ${name}`, title: "normalised score used by fusion" },
      el("i", { style: `width:${(width * 100).toFixed(1)}%` })), el("span", { class: "num" }, label)];
  }).flat();
}

function openExplain(hit, rank, product, resp) {
  const ex = parseExplanation(hit.explanation);
  const extra = Object.entries(hit).filter(([k]) => !KNOWN_HIT.has(k));
  const attrs = Object.entries(product.attributes || {});
  $("#drawer-title").textContent = `#${rank} ${hit.title || hit.product_id}`;
  $("#drawer-body").replaceChildren(
    product.photo_url ? el("img", { class: "big", src: product.photo_url, alt: hit.title }) : "",
    el("h3", {}, "Signals (raw · normalised)"),
    el("div", { class: "bars", id: "signal-bars" }, signalRows(hit.signal_scores)),
    el("p", { class: "muted" }, `fused score ${fmt(hit.score)}`),
    el("h3", {}, "Language"),
    el("dl", { class: "kv" },
      el("dt", {}, "query language"), el("dd", { id: "explain-lang" }, resp.query_language || "(photo only)"),
      el("dt", {}, "translation used"), el("dd", { id: "explain-translation" }, ex.translation || "none (query used as typed)")),
    el("h3", {}, "Why it matched"),
    el("ul", { class: "why" }, ex.parts.length ? ex.parts.map((p) => el("li", {}, p)) : el("li", {}, "no explanation returned")),
    el("h3", {}, "Product"),
    el("dl", { class: "kv" },
      el("dt", {}, "id"), el("dd", {}, hit.product_id),
      el("dt", {}, "category"), el("dd", {}, hit.category || ""),
      el("dt", {}, "price"), el("dd", {}, hit.price ?? "—"),
      product.in_stock !== undefined && product.in_stock !== null ? [el("dt", {}, "in stock"), el("dd", {}, product.in_stock ? "yes" : "no")] : [],
      attrs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
      extra.map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : v)])));
  $("#drawer").hidden = false;
}

// ------------------------------------------------------------------ optional response parts
// Facets: accepted as a list of {name|field|key, values|buckets|counts: [{value|key|label, count}]} or as an
// object {name: {value: count} | [{value, count}]}. A category facet also fills the counts in the sidebar.
function normalizeFacets(facets) {
  if (!facets) return [];
  const entries = Array.isArray(facets)
    ? facets.map((f) => [f.name ?? f.field ?? f.key ?? "facet", f.values ?? f.buckets ?? f.counts ?? []])
    : Object.entries(facets);
  return entries.map(([name, values]) => ({
    name: String(name),
    values: (Array.isArray(values) ? values : Object.entries(values).map(([value, count]) => ({ value, count })))
      .map((v) => ({ value: String(v.value ?? v.key ?? v.label ?? v.name ?? ""), count: Number(v.count ?? v.hits ?? 0) })),
  }));
}

function renderFacets(facets) {
  const groups = normalizeFacets(facets);
  $("#facets").hidden = !groups.length;
  document.querySelectorAll("#f-categories .count").forEach((c) => {
    c.textContent = c.dataset.catalog; c.title = "products in the catalog";
  });
  const body = groups.map((g) => {
    if (/^categor/.test(g.name)) {
      const counts = new Map(g.values.map((v) => [v.value, v.count]));
      document.querySelectorAll("#f-categories .count").forEach((c) => {
        c.textContent = counts.get(c.dataset.cat) ?? 0;
        c.title = "matching products for the current query and filters";
      });
    }
    return el("div", { class: "facet-group" }, el("h3", {}, g.name),
      g.values.map((v) => el("div", { class: "check" }, v.value, el("span", { class: "count" }, v.count))));
  });
  $("#facet-body").replaceChildren(...body);
}

function boxOf(region) {
  const b = region.box ?? region.bbox ?? region.bounding_box ?? region;
  if (Array.isArray(b) && b.length === 4) return { x0: b[0], y0: b[1], x1: b[2], y1: b[3] };
  const x0 = b.x_min ?? b.xmin ?? b.left ?? b.x, y0 = b.y_min ?? b.ymin ?? b.top ?? b.y;
  const x1 = b.x_max ?? b.xmax ?? b.right ?? (b.width !== undefined || b.w !== undefined ? x0 + (b.width ?? b.w) : undefined);
  const y1 = b.y_max ?? b.ymax ?? b.bottom ?? (b.height !== undefined || b.h !== undefined ? y0 + (b.height ?? b.h) : undefined);
  return [x0, y0, x1, y1].every((v) => typeof v === "number") ? { x0, y0, x1, y1 } : null;
}

// Regions (shop the look): boxes drawn on the query photo; clicking one shows that region's hits.
function renderRegions(regions, products) {
  const wrap = $("#regions");
  if (!Array.isArray(regions) || !regions.length || !state.photoUrl) { wrap.hidden = true; wrap.replaceChildren(); return; }
  const img = el("img", { src: state.photoUrl, alt: "room photo" });
  const scene = el("div", { class: "scene" }, img);
  img.addEventListener("load", () => {
    const W = img.naturalWidth, H = img.naturalHeight;
    regions.forEach((r, i) => {
      const b = boxOf(r);
      if (!b) return;
      const frac = Math.max(b.x1, b.y1) <= 1.0001;
      const [x0, y0, x1, y1] = frac ? [b.x0, b.y0, b.x1, b.y1] : [b.x0 / W, b.y0 / H, b.x1 / W, b.y1 / H];
      const label = r.label ?? r.category ?? `region ${i + 1}`;
      const box = el("div", { class: "box", title: String(label),
        style: `left:${x0 * 100}%;top:${y0 * 100}%;width:${(x1 - x0) * 100}%;height:${(y1 - y0) * 100}%`,
        onclick: () => {
          scene.querySelectorAll(".box").forEach((x) => x.classList.remove("active"));
          box.classList.add("active");
          renderGrid(r.hits || [], products, state.last.response);
        } }, el("span", {}, label));
      scene.append(box);
    });
  });
  wrap.replaceChildren(el("h3", {}, "Shop the look: click a box for its products (the grid shows the merged list)"), scene);
  wrap.hidden = false;
}

function renderExtras(resp) {
  const extra = Object.fromEntries(Object.entries(resp).filter(([k]) => !KNOWN_RESPONSE.has(k)));
  $("#extras").hidden = !Object.keys(extra).length;
  $("#extras-body").textContent = JSON.stringify(extra, null, 2);
}

// ------------------------------------------------------------------ relevance inspection
async function loadQuerySets() {
  const body = await getJSON("/api/querysets");
  const sel = $("#qs-select");
  for (const q of body.querysets || []) sel.append(el("option", { value: q.id }, `${q.name} (${q.queries} queries)`));
}

async function startInspection() {
  const form = new FormData();
  const file = $("#qs-file").files[0];
  if (file) {
    form.append("file", file, file.name);
    for (const p of $("#qs-photos").files) form.append("photos", p, p.name);
  } else form.append("source", $("#qs-select").value);
  showError($("#inspect-error"), null);
  $("#inspect-result").hidden = true;
  $("#inspect-btn").disabled = true;
  const body = await getJSON("/api/inspect", { method: "POST", body: form });
  if (body.error) { showError($("#inspect-error"), body.error); $("#inspect-btn").disabled = false; return; }
  pollRun(body.run.id);
}

async function pollRun(id) {
  const body = await getJSON(`/api/inspect/${id}`);
  if (body.error) { showError($("#inspect-error"), body.error); $("#inspect-btn").disabled = false; return; }
  const run = body.run;
  $("#progress-wrap").hidden = false;
  $("#progress").max = run.total; $("#progress").value = run.done;
  $("#progress-label").textContent = `${run.done} / ${run.total} queries${run.errors ? ` · ${run.errors} errors` : ""}`;
  if (run.state === "running") { setTimeout(() => pollRun(id), 400); return; }
  $("#inspect-btn").disabled = false;
  if (run.state === "failed") { showError($("#inspect-error"), { source: "console", message: run.failure }); return; }
  renderRun(run);
}

const METRICS = [["recall@1", "R@1"], ["recall@10", "R@10"], ["mrr@10", "MRR@10"], ["ndcg@10", "nDCG@10"]];

function thumb(pid, cls) {
  const img = el("img", { src: photoUrl(pid), alt: pid, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(el("div", { class: "nophoto" }, "no photo")));
  return el("div", { class: `thumb ${cls}`, title: pid, "data-product": pid }, img, pid);
}

function detailRow(q, ncols) {
  const rel = new Set(q.relevant);
  return el("tr", { class: "detail" }, el("td", { colspan: ncols },
    el("div", { class: "compare" },
      el("div", {}, el("h4", {}, "Expected"), el("div", { class: "strip expected" },
        q.relevant.map((pid) => thumb(pid, q.found.includes(pid) ? "ok" : "missed")))),
      el("div", {}, el("h4", {}, "Came back (top 10)"), el("div", { class: "strip returned" },
        q.ranked.slice(0, 10).map((pid) => thumb(pid, rel.has(pid) ? "ok" : "")))))));
}

function renderRun(run) {
  $("#inspect-result").hidden = false;
  $("#run-title").textContent = `${run.name}: ${run.total} queries`;
  $("#export").href = `/api/inspect/${run.id}/export`;
  const m = run.metrics;
  $("#overall").replaceChildren(
    el("tr", {}, el("th", {}, "queries"), METRICS.map(([, label]) => el("th", {}, label)), el("th", {}, "errors")),
    el("tr", { id: "overall-row" }, el("td", { class: "n" }, m.n), METRICS.map(([k]) => el("td", { class: "n", "data-metric": k }, fmt(m[k]))),
      el("td", { class: "n" }, run.errors)));
  const head = el("tr", {}, ["#", "query id", "query", "R@10", "nDCG@10", "MRR@10", "found", "ms", "note"].map((h) => el("th", {}, h)));
  const rows = [head];
  let opened = 0;
  run.queries.forEach((q, i) => {
    const fail = q["recall@10"] < 1;
    const query = [q.text, q.image ? `photo ${q.image}` : ""].filter(Boolean).join(" + ");
    const row = el("tr", { class: `q${fail ? " fail" : ""}`, "data-query": q.id },
      el("td", { class: "n" }, i + 1), el("td", {}, q.id), el("td", {}, query),
      el("td", { class: "n m", "data-metric": "recall@10" }, fmt(q["recall@10"])),
      el("td", { class: "n m", "data-metric": "ndcg@10" }, fmt(q["ndcg@10"])),
      el("td", { class: "n" }, fmt(q["mrr@10"])),
      el("td", { class: "n" }, `${q.found.length}/${q.relevant.length}`),
      el("td", { class: "n" }, q.ms ?? ""), el("td", { class: "error-note" }, q.error || ""));
    rows.push(row);
    if (fail) {
      const detail = detailRow(q, 9);
      detail.hidden = opened++ >= 3; // the three worst failures open; click a row for the others
      row.addEventListener("click", () => (detail.hidden = !detail.hidden));
      rows.push(detail);
    }
  });
  $("#per-query").replaceChildren(...rows);
}
