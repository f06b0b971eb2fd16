// The page of `hfspeech serve`: upload a file or record the microphone, POST the audio to `/` (the Hub's
// audio-classification contract, with ?timeline=true), list the top-k (and a multi-label model's active labels,
// past top-k too, marked "active" in words and green) with their scores as text beside bars, and draw the
// windows as a heat map of the labels some window ranked in its top-k, with a table of the same numbers.
// Plain browser JavaScript: no build step, nothing loaded from outside the server. The text the page shows is
// built by functions that need no DOM (the first part), so tests/test_web_page38.py runs them under node.
"use strict";

// Timeline rows: 14 px for each of the model's labels made a 6,000-label canvas 84,000 px tall, past the
// browser's limit (nothing drawn), and at 1,000 labels the lit rows were out of view among 990 empty ones.
const MAX_TIMELINE_ROWS = 40, ROW_HEIGHT = 18, NAME_WIDTH = 180;

const NO_SCORE = "no score"; // what a null score is called where it is said (a screen reader read "–" as "en dash")

function scoreText(score, missing = "–") {
  return score === null || score === undefined ? missing : score.toFixed(3); // null: a NaN score (NaN weights)
}

function answerSummary(name, answer) {
  // What the status region announces: a screen reader hears the top label (and a multi-label model's active
  // labels) without walking the list. A multi-label answer's entries say which are active (`active`).
  const judged = answer.predictions.some((p) => "active" in p);
  const top = answer.predictions[0];
  const best = top ? ` · top: ${top.label} (${scoreText(top.score, NO_SCORE)})` : "";
  const active = judged ? ` · active: ${answer.active_labels.join(", ") || "none"}` : "";
  return `${name}: ${answer.num_windows} window${answer.num_windows > 1 ? "s" : ""}${best}${active}`;
}

function timelineRows(windows, names) {
  // The labels some window ranked in its top-k (the only scores the answer holds), in the model's order; past
  // MAX_TIMELINE_ROWS, those with the highest peak score.
  const peaks = new Map();
  windows.forEach((w) => w.labels.forEach((label, i) => {
    peaks.set(label, Math.max(peaks.has(label) ? peaks.get(label) : -Infinity, w.scores[i] ?? -Infinity));
  }));
  const order = new Map(names.map((name, i) => [name, i]));
  const at = (label) => (order.has(label) ? order.get(label) : names.length);
  const kept = [...peaks.keys()].sort((a, b) => peaks.get(b) - peaks.get(a)).slice(0, MAX_TIMELINE_ROWS);
  return { rows: kept.sort((a, b) => at(a) - at(b)), ranked: peaks.size };
}

function timelineCaption(windows, names, rows, ranked) {
  // The canvas in words: what it spans, which labels its rows are (full names, top to bottom: the canvas cuts
  // long ones) and which it leaves out; the table under it holds the scores.
  const last = windows[windows.length - 1], k = windows.reduce((most, w) => Math.max(most, w.labels.length), 0);
  const leftOut = names.length - rows.length;
  return `${windows.length} windows, 0–${last.end.toFixed(1)} s: ` +
    `${rows.length} label${rows.length === 1 ? "" : "s"}, those in some window's top-${k}` +
    (ranked > rows.length ? ` (the ${rows.length} highest peaks of ${ranked})` : "") +
    (leftOut > 0 ? `; ${leftOut} of the model's ${names.length} labels not drawn` : "") +
    `. Rows, top to bottom: ${rows.join(", ")}.`;
}

function windowEntries(windows, missing = "–") {
  // The timeline's text alternative, one [time span, its labels and scores] per window: the scores the canvas
  // shows only as shades, for a screen reader, a zoomed page or a narrow screen (where the canvas is too small).
  // `missing`: what a null score reads as (NO_SCORE: the words a screen reader is given).
  return windows.map((w) => [
    `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`,
    w.labels.length ? w.labels.map((label, i) => `${label} (${scoreText(w.scores[i], missing)})`).join(", ") :
      w.skipped ? "not classified: too quiet" : "no labels",
  ]);
}

function fittedNames(ctx, names, width) {
  // Each name, or its start, "…" and its end, to fit `width` pixels: names often differ only at one end. The
  // share of the start kept is a half, or the nearest one that leaves the fewest names reading alike.
  let best = null;
  for (const share of [0.5, 0.6, 0.4, 0.7, 0.3, 0.8, 0.2, 0.9, 0.1, 1, 0]) {
    const shown = names.map((name) => fitted(ctx, name, width, share));
    const alike = shown.length - new Set(shown).size;
    if (!best || alike < best.alike) best = { shown, alike };
    if (alike === 0) break;
  }
  return best.shown;
}

function fitted(ctx, text, width, share) {
  if (ctx.measureText(text).width <= width) return text;
  const cut = (keep) => {
    const head = Math.round(keep * share);
    return text.slice(0, head) + "…" + text.slice(text.length - (keep - head));
  };
  let fits = 0, over = text.length; // the most characters kept that fit, by halves
  while (over - fits > 1) {
    const keep = Math.floor((fits + over) / 2);
    if (ctx.measureText(cut(keep)).width <= width) fits = keep; else over = keep;
  }
  return cut(fits);
}

// The page itself (a browser from here on) ---

const $ = (id) => document.getElementById(id);
let labels = [], shownTimeline = null;

function headers(extra) {
  const key = $("api-key").value.trim();
  return Object.assign(key ? { Authorization: "Bearer " + key } : {}, extra || {});
}

function setStatus(text, isError) {
  // Progress goes to the polite status region, an error to the alert region (read out at once); both sit in
  // #status, and an error starts with the word, not only red.
  $("status-text").textContent = isError ? "" : text;
  $("alert").textContent = isError ? `Error: ${text}` : "";
  $("status").className = isError ? "error" : "";
}

async function loadInfo() {
  const response = await fetch("info", { headers: headers() }).catch(() => null);
  if (!response || !response.ok) {
    $("model-info").textContent = !response ? "model information unavailable: the server did not answer" :
      response.status === 401 ? "enter the API key to see the model" :
      response.status === 503 ? "the model is still loading…" : "model information unavailable";
    if (response && response.status === 503) setTimeout(loadInfo, 1000);
    return;
  }
  const info = await response.json();
  labels = info.labels;
  $("model-info").textContent = `${info.labels.length} labels · ${info.sampling_rate} Hz · ${info.backend} · ` +
    `window ${info.window_seconds} s · ${info.model_file ? info.model_file + " · " : ""}` +
    `revision ${info.revision || "unknown"}`;
}

function topKParameter(box) {
  // The box as typed, for the server to judge (its top_k rule is the one rule: 0 is refused, in words); empty:
  // none sent, the server's default. 0 and an empty box used to become 5 without a word. null: not a number.
  if (box.validity && box.validity.badInput) return null;
  const typed = box.value.trim();
  return typed ? `&top_k=${encodeURIComponent(typed)}` : "";
}

async function classify(blob, name) {
  const topK = topKParameter($("top-k"));
  if (topK === null) return setStatus(`${name}: top-k must be a whole number (empty: the server's default)`, true);
  setStatus(`classifying ${name}…`);
  $("result").replaceChildren();
  $("result-section").hidden = $("timeline-section").hidden = true;
  shownTimeline = null;
  let response;
  try {
    response = await fetch(`./?timeline=true${topK}`, {
      method: "POST", body: blob, headers: headers({ "Content-Type": blob.type || "application/octet-stream" }),
    });
  } catch (error) { // the server stopped or the network went: said, not left at "classifying…"
    setStatus(`${name}: the server did not answer (${error.message})`, true);
    return;
  }
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    setStatus(`${name}: ${answer.error || "HTTP " + response.status}`, true);
    return;
  }
  setStatus(answerSummary(name, answer));
  showList(answer.predictions);
  if (answer.num_windows > 1) showTimeline(answer);
}

function textElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = text;
  return element;
}

function showList(predictions) {
  // A list a screen reader walks: each entry's name, score and (multi-label) "active" are text; the bar is
  // only a picture of the score, hidden from assistive technology.
  const judged = predictions.some((p) => "active" in p);
  const rows = predictions.map((p) => {
    const row = textElement("li", "row" + (p.active ? " active" : ""), "");
    const label = textElement("span", "label", p.label);
    label.title = p.label;
    const bar = textElement("div", "bar", ""), fill = document.createElement("div");
    bar.setAttribute("aria-hidden", "true");
    fill.style.width = `${Math.max(0, Math.min(1, p.score ?? 0)) * 100}%`;
    bar.appendChild(fill);
    row.append(label, bar, scoreElement(p.score));
    if (judged) row.append(textElement("span", "state", p.active ? "active" : ""));
    return row;
  });
  $("result").classList.toggle("judged", judged);
  $("result").replaceChildren(...rows);
  $("result-section").hidden = false;
}

function scoreElement(score) {
  // A null score shows "–" and is said "no score" (the dash hidden from assistive technology, the words from sight)
  if (score !== null && score !== undefined) return textElement("span", "score", scoreText(score));
  const element = textElement("span", "score", ""), dash = textElement("span", "", "–");
  dash.setAttribute("aria-hidden", "true");
  element.append(dash, textElement("span", "visually-hidden", NO_SCORE));
  return element;
}

function showTimeline(answer) {
  // One column per window, one row per label some window ranked in its top-k; the stronger the colour, the
  // higher that label's score there. Colours are the page's (style.css), so the dark scheme draws in its own.
  const canvas = $("timeline"), ctx = canvas.getContext("2d"), style = getComputedStyle(canvas);
  const names = answer.labels || labels;
  const { rows, ranked } = timelineRows(answer.windows, names);
  const index = new Map(rows.map((name, row) => [name, row]));
  canvas.height = ROW_HEIGHT * Math.max(1, rows.length);
  const left = NAME_WIDTH, width = canvas.width - left, step = width / answer.windows.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui";
  ctx.fillStyle = style.getPropertyValue("--ink").trim() || "#222";
  fittedNames(ctx, rows, left - 8).forEach((name, row) => ctx.fillText(name, 4, row * ROW_HEIGHT + ROW_HEIGHT * 0.7));
  const cell = style.getPropertyValue("--cell").trim() || "59, 110, 165";
  answer.windows.forEach((w, column) => {
    w.labels.forEach((label, i) => {
      if (!index.has(label) || w.scores[i] === null) return; // null: a NaN score, left blank
      ctx.fillStyle = `rgba(${cell}, ${w.scores[i]})`;
      ctx.fillRect(left + column * step, index.get(label) * ROW_HEIGHT, Math.ceil(step), ROW_HEIGHT - 1);
    });
  });
  canvas.onmousemove = (event) => { // the full name of the row under the pointer
    const box = canvas.getBoundingClientRect();
    canvas.title = rows[Math.floor((event.clientY - box.top) / box.height * rows.length)] || "";
  };
  $("timeline-caption").textContent = timelineCaption(answer.windows, names, rows, ranked);
  const spoken = windowEntries(answer.windows, NO_SCORE);
  $("timeline-table").tBodies[0].replaceChildren(...windowEntries(answer.windows).map(([span, entries], i) => {
    const row = document.createElement("tr"), head = textElement("th", "", span), cell = textElement("td", "", entries);
    head.scope = "row";
    if (spoken[i][1] !== entries) cell.setAttribute("aria-label", spoken[i][1]); // a null score: "no score"
    row.append(head, cell);
    return row;
  }));
  $("timeline-section").hidden = false;
  shownTimeline = answer;
}

let recorder = null;
async function toggleRecording() {
  // The button's text says what pressing it does ("Record", "Stop recording"); red is only a second cue.
  if (recorder) {
    recorder.stop();
    return;
  }
  if (!navigator.mediaDevices) { // a browser grants the microphone only to https pages and localhost
    setStatus("the microphone needs the page on https or localhost; upload a file instead", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    setStatus(`microphone unavailable: ${error.message}`, true);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    const blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
    recorder = null;
    $("record").textContent = "Record";
    $("record").classList.remove("recording");
    classify(blob, "recording");
  };
  recorder.start();
  $("record").textContent = "Stop recording";
  $("record").classList.add("recording");
  setStatus("recording… press Stop recording to classify");
}

function start() {
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) classify(file, file.name);
  });
  $("record").addEventListener("click", toggleRecording);
  $("api-key").addEventListener("change", loadInfo);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (shownTimeline) showTimeline(shownTimeline); // redrawn in the scheme's colours
  });
  loadInfo();
}

if (typeof module === "object" && module.exports) { // node (the tests): the functions, no page
  module.exports = {
    scoreText, answerSummary, timelineRows, timelineCaption, windowEntries, fittedNames, topKParameter,
  };
} else {
  start();
}
