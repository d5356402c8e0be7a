// The listening page of `lidframe review`: one row at a time, answered from the keyboard.
// Every answer is a POST that the server commits to the job database before it replies; the page
// keeps nothing that matters (a reload shows the row the reviewer holds).
"use strict";

const $ = (id) => document.getElementById(id);
const page = {
  state: null, // the server's last answer (/api/state)
  busy: false, // a request is in flight: answer keys wait for it
  names: new Map(), // code -> English name, every canonical language
  languages: [], // [[code, name], ...]
  matches: [], // the type-ahead's codes
  chosen: 0, // the type-ahead's highlighted match
  preloaded: null, // <audio> of the row that probably comes next
  passedEnd: false, // the player reached the window's end
  seekedTo: null, // where the player was put for this row (the tests read it)
  shown: 0, // states shown so far (the tests wait on it)
};
window.lidframe = page;

async function api(path, body) {
  const options = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

async function call(path, body) {
  if (page.busy) return;
  page.busy = true;
  try {
    show(await api(path, body));
  } catch (error) {
    $("message").textContent = String(error.message || error);
  } finally {
    page.busy = false;
  }
}

function nameOf(code) {
  return page.names.get(code) || "";
}

function pct(p) {
  return p === null || p === undefined ? "" : `${(100 * p).toFixed(0)}%`;
}

function seconds(s) {
  return s === null || s === undefined ? "?" : `${Number(s).toFixed(2)} s`;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function show(state) {
  page.state = state;
  page.shown += 1;
  const p = state.progress;
  $("who").textContent = `job ${state.job} · ${state.queue || "every queue"} · ${state.reviewer}`;
  const pace = p.pace === null ? "pace: after two answers" : `${p.pace.toFixed(1)} rows/min`;
  $("progress").textContent = `${p.done} done · ${p.left} left in the queue · ${pace}`;
  $("message").textContent = state.message || "";
  const item = state.item;
  $("row").hidden = !item;
  $("empty").hidden = !!item;
  if (!item) {
    $("empty").textContent = `Nothing left to review for ${state.reviewer} here. (z takes the last answer back.)`;
    player().removeAttribute("src");
    return;
  }
  $("where").textContent = `row ${item.row} · ${item.id} · ${item.audio}`;
  const facts = $("facts");
  facts.replaceChildren();
  const fact = (label, value) => {
    const span = el("span");
    span.append(el("b", `${label}: `), value);
    facts.append(span);
  };
  fact("window", `${seconds(item.start)} – ${item.end === null ? "end" : seconds(item.end)}`);
  fact("speech", seconds(item.speech_seconds));
  if (item.consensus) {
    const c = item.consensus;
    fact("consensus", `${c.lang || "?"} ${nameOf(c.lang)} ${pct(c.prob)}`);
  }
  if (item.code_switch) fact("code switch", "yes");
  fact("queue", item.queue + (item.second ? " (second review)" : ""));
  const choices = $("choices");
  choices.replaceChildren();
  item.choices.forEach((code, i) => {
    const li = el("li", null, { "data-code": code });
    const best = Math.max(0, ...item.models.flatMap((m) => m.top3.filter((t) => t[0] === code).map((t) => t[1])));
    li.append(el("kbd", String(i + 1)), `${code} ${nameOf(code)}`, el("span", pct(best), { class: "p" }));
    li.addEventListener("click", () => answer("label", code));
    choices.append(li);
  });
  const table = $("models");
  table.replaceChildren();
  const head = el("tr");
  ["model", "1st", "2nd", "3rd"].forEach((h) => head.append(el("th", h)));
  table.append(head);
  for (const m of item.models) {
    const tr = el("tr");
    tr.append(el("td", m.model));
    for (let i = 0; i < 3; i++) {
      const t = m.top3[i];
      tr.append(el("td", t ? `${t[0]} ${nameOf(t[0])} ${pct(t[1])}` : ""));
    }
    table.append(tr);
  }
  const windows = $("windows");
  windows.replaceChildren();
  for (const w of item.windows) {
    const li = el("li", `${w.model}: ${seconds(w.start)} – ${seconds(w.end)} ${w.lang || ""} ${pct(w.prob)}`);
    li.addEventListener("click", () => {
      player().currentTime = w.start;
      player().play().catch(() => {});
    });
    windows.append(li);
  }
  load(item, state.upcoming);
}

function player() {
  return $("player");
}

// Put the row's audio in the player (the preloaded element when it is this row's), at the window.
function load(item, upcoming) {
  let audio = player();
  const url = new URL(item.audio_url, location.href).href;
  if (audio.dataset.url !== url) {
    if (page.preloaded && page.preloaded.dataset.url === url) {
      const next = page.preloaded;
      page.preloaded = null;
      next.id = "player";
      next.controls = true;
      audio.pause();
      audio.replaceWith(next);
      audio = next;
    } else {
      audio.pause();
      audio.dataset.url = url;
      audio.src = url;
    }
    watch(audio);
    page.passedEnd = false;
    page.seekedTo = null;
    const start = () => {
      audio.currentTime = item.start || 0;
      page.seekedTo = audio.currentTime;
      audio.play().catch(() => {}); // a browser may wait for the first key press
    };
    if (audio.readyState >= 1) start();
    else audio.addEventListener("loadedmetadata", start, { once: true });
  }
  preload(upcoming);
}

function preload(path) {
  if (!path) return;
  const url = new URL(path, location.href).href;
  if (page.preloaded && page.preloaded.dataset.url === url) return;
  const audio = new Audio();
  audio.preload = "auto";
  audio.dataset.url = url;
  audio.src = url;
  audio.load();
  page.preloaded = audio;
}

function watch(audio) {
  if (audio.dataset.watched) return;
  audio.dataset.watched = "1";
  audio.addEventListener("timeupdate", () => {
    const item = page.state && page.state.item;
    if (item && item.end !== null && !page.passedEnd && audio.currentTime >= item.end) {
      page.passedEnd = true;
      audio.pause();
    }
  });
  audio.addEventListener("error", () => {
    $("message").textContent =
      "the browser cannot play this file (its format, or the store refused it); answer from the models' view or skip (s)";
  });
}

function toggle() {
  const audio = player();
  const item = page.state && page.state.item;
  if (!item) return;
  if (audio.paused) {
    if (page.passedEnd) {
      audio.currentTime = item.start || 0;
      page.passedEnd = false;
    }
    audio.play().catch((e) => ($("message").textContent = String(e.message || e)));
  } else {
    audio.pause();
  }
}

function answer(verdict, label) {
  const item = page.state && page.state.item;
  if (!item || page.busy) return;
  call("/api/answer", { row: item.row, verdict, label: label || null });
}

// The type-ahead over every canonical language: code first, then names.
function rank(query) {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const onScreen = new Set((page.state && page.state.item && page.state.item.choices) || []);
  const scored = [];
  for (const [code, name] of page.languages) {
    const n = name.toLowerCase();
    let score;
    if (code === q) score = 0;
    else if (n === q) score = 1;
    else if (n.startsWith(q)) score = 2;
    else if (code.startsWith(q)) score = 3;
    else if (n.split(/[\s,()-]+/).some((w) => w.startsWith(q))) score = 4;
    else if (n.includes(q)) score = 5;
    else continue;
    scored.push([score, onScreen.has(code) ? 0 : 1, code.length, name.length, code]);
  }
  scored.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || a[3] - b[3]);
  return scored.slice(0, 8).map((s) => s[4]);
}

function drawMatches() {
  const list = $("matches");
  list.replaceChildren();
  page.matches.forEach((code, i) => {
    const li = el("li", null, { "data-code": code, class: i === page.chosen ? "on" : "" });
    li.append(el("code", code), nameOf(code));
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();
      pick(code);
    });
    list.append(li);
  });
}

function pick(code) {
  const search = $("search");
  search.value = "";
  page.matches = [];
  drawMatches();
  search.blur();
  answer("label", code);
}

$("search").addEventListener("input", () => {
  page.matches = rank($("search").value);
  page.chosen = 0;
  drawMatches();
});

$("search").addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    const n = page.matches.length;
    if (n) page.chosen = (page.chosen + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    drawMatches();
    e.preventDefault();
  } else if (e.key === "Enter") {
    if (page.matches.length) pick(page.matches[page.chosen]);
    e.preventDefault();
  } else if (e.key === "Escape") {
    $("search").value = "";
    page.matches = [];
    drawMatches();
    $("search").blur();
    e.preventDefault();
  }
  e.stopPropagation();
});

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target === $("search")) return;
  const key = e.key;
  if (key === " " || key === "k") {
    toggle();
  } else if (/^[1-9]$/.test(key)) {
    const item = page.state && page.state.item;
    const code = item && item.choices[Number(key) - 1];
    if (code) answer("label", code);
  } else if (key === "/") {
    $("search").focus();
  } else if (key === "u") {
    answer("unsure");
  } else if (key === "n") {
    answer("no_speech");
  } else if (key === "s") {
    answer("skip");
  } else if (key === "z") {
    call("/api/undo", {});
  } else {
    return;
  }
  e.preventDefault();
});

async function start() {
  try {
    page.languages = await api("/api/languages");
    page.names = new Map(page.languages);
  } catch (error) {
    $("message").textContent = `languages: ${error.message || error}`;
  }
  await call("/api/state");
}

start();
