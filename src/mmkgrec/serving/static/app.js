// The page of `mmkgrec serve`: search a user, show their recommendations (with posters and
// explanations), their history, and the items similar to a clicked item. Plain DOM, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

async function getJSON(url, options) {
  const res = await fetch(url, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

const q = (params) => new URLSearchParams(params).toString();

function card(entry, opts = {}) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.item = entry.item;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = entry.title;
  img.src = "/v1/poster?" + q({ item: entry.item });
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = entry.title;
  el.append(img, title);
  if (opts.meta) {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = opts.meta;
    el.append(meta);
  }
  if (opts.why) {
    const why = document.createElement("p");
    why.className = "why";
    el.append(why);
  }
  el.addEventListener("click", () => showSimilar(entry, el));
  return el;
}

// each verified sentence, its supporting triples as the tooltip
function explanationNodes(body) {
  if (!body || !Array.isArray(body.sentences) || !body.sentences.length) {
    // nothing verified to say: the reason, never an unverified claim
    const notes = (body && Array.isArray(body.notes) && body.notes.length) ? body.notes.join("; ") : "";
    return [document.createTextNode((body && body.text) || (notes ? `(no explanation: ${notes})` : ""))];
  }
  return body.sentences.map((s, k) => {
    const span = document.createElement("span");
    span.textContent = (k ? " " : "") + s.text;
    span.title = (s.triples || []).map((t) => `${t.head} ${t.relation} ${t.tail} (${t.source})`).join("\n");
    return span;
  });
}

async function explain(user, entry, el) {
  const why = el.querySelector(".why");
  try {
    const body = await getJSON("/v1/explain?" + q({ user, item: entry.item, backend: "template" }));
    why.replaceChildren(...explanationNodes(body));
  } catch (e) {
    why.textContent = "(no explanation: " + e.message + ")";
  }
}

async function showUser(user, k) {
  $("message").textContent = "";
  let recs;
  try {
    recs = await getJSON("/v1/recommend?" + q({ user, k }));
  } catch (e) {
    $("message").textContent = e.message;
    return;
  }
  $("recs-user").textContent = user;
  $("recs-k").textContent = String(recs.items.length);
  const box = $("recs");
  box.replaceChildren();
  const cards = recs.items.map((entry, r) => {
    const el = card(entry, { meta: `#${r + 1} · score ${entry.score.toFixed(3)}`, why: true });
    box.append(el);
    return [entry, el];
  });
  $("recs-section").hidden = false;
  $("similar-section").hidden = true;
  document.body.dataset.recsFor = user;
  const hist = await getJSON("/v1/history?" + q({ user, limit: 30 }));
  $("history-count").textContent = `(${hist.items.length} of ${hist.total}, latest first)`;
  $("history").replaceChildren(...hist.items.map((h) =>
    card(h, { meta: h.rating !== null ? `rated ${h.rating}` : h.part })));
  $("history-section").hidden = false;
  await Promise.all(cards.map(([entry, el]) => explain(user, entry, el)));
  document.body.dataset.explained = user;
}

async function showSimilar(entry, el) {
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  el.classList.add("selected");
  try {
    const sim = await getJSON("/v1/similar?" + q({ item: entry.item, k: 10 }));
    $("similar-title").textContent = entry.title;
    $("similar").replaceChildren(...sim.items.map((s) =>
      card(s, { meta: `cosine ${s.score.toFixed(3)}` })));
    $("similar-section").hidden = false;
    document.body.dataset.similarFor = entry.item;
  } catch (e) {
    $("message").textContent = e.message;
  }
}

let searchTimer = null;
function suggest() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    try {
      const res = await getJSON("/v1/users?" + q({ prefix: $("user").value, limit: 20 }));
      $("user-list").replaceChildren(...res.users.map((u) => {
        const o = document.createElement("option");
        o.value = u;
        return o;
      }));
    } catch (e) { /* suggestions are optional */ }
  }, 120);
}

async function init() {
  try {
    const h = await getJSON("/health");
    $("run-info").textContent = `${h.model} on ${h.dataset} · ${h.n_users} users · ${h.n_items} items`;
  } catch (e) {
    $("run-info").textContent = "the server does not answer: " + e.message;
  }
  $("user").addEventListener("input", suggest);
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    showUser($("user").value.trim(), $("k").value || 10);
  });
  suggest();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
