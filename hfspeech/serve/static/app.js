// The page of `hfspeech serve`: upload a file or record the microphone, POST the audio to `/` (the Hub's
// audio-classification contract, with ?timeline=true), draw the top-k (and a multi-label model's active labels,
// green, past top-k too) as bars and the windows as a heat map of the labels some window ranked in its top-k.
// A long label is clipped with an ellipsis, its full name in a tooltip.
// Plain browser JavaScript: no build step, nothing loaded from outside the server.
"use strict";

const $ = (id) => document.getElementById(id);
let labels = [];
// Timeline rows: 14 px for each of the model's labels made a 6,000-label canvas 84,000 px tall, past the
// browser's limit (nothing drawn), and at 1,000 labels the lit rows were out of view among 990 empty ones.
const MAX_TIMELINE_ROWS = 40, ROW_HEIGHT = 18, NAME_WIDTH = 180;

function headers(extra) {
  const key = $("api-key").value.trim();
  return Object.assign(key ? { Authorization: "Bearer " + key } : {}, extra || {});
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadInfo() {
  const response = await fetch("info", { headers: headers() });
  if (!response.ok) {
    $("model-info").textContent = response.status === 401 ? "enter the API key to see the model" :
      response.status === 503 ? "the model is still loading…" : "model information unavailable";
    if (response.status === 503) setTimeout(loadInfo, 1000);
    return;
  }
  const info = await response.json();
  labels = info.labels;
  $("model-info").textContent = `${info.labels.length} labels · ${info.sampling_rate} Hz · ${info.backend} · ` +
    `window ${info.window_seconds} s · ${info.model_file ? info.model_file + " · " : ""}` +
    `revision ${info.revision || "unknown"}`;
}

async function classify(blob, name) {
  setStatus(`classifying ${name}…`);
  $("result").replaceChildren();
  $("timeline-section").hidden = true;
  const topK = Math.max(1, parseInt($("top-k").value, 10) || 5);
  const response = await fetch(`./?timeline=true&top_k=${topK}`, {
    method: "POST", body: blob, headers: headers({ "Content-Type": blob.type || "application/octet-stream" }),
  });
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    setStatus(`${name}: ${answer.error || "HTTP " + response.status}`, true);
    return;
  }
  // A multi-label answer lists every active label, past top-k too; its entries say which (`active`)
  const judged = answer.predictions.some((p) => "active" in p);
  const active = judged ? ` · active: ${answer.active_labels.join(", ") || "none"}` : "";
  setStatus(`${name}: ${answer.num_windows} window${answer.num_windows > 1 ? "s" : ""}${active}`);
  showBars(answer.predictions);
  if (answer.num_windows > 1) showTimeline(answer);
}

function showBars(predictions) {
  const rows = predictions.map((p) => {
    const row = document.createElement("div");
    row.className = "row" + (p.active ? " active" : "");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = p.label;
    label.title = p.label; // clipped with an ellipsis past its column (style.css): the full name on hover
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = `${Math.max(0, Math.min(1, p.score ?? 0)) * 100}%`; // null: a NaN score (NaN weights)
    bar.appendChild(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = p.score === null ? "–" : p.score.toFixed(3);
    row.append(label, bar, score);
    return row;
  });
  $("result").replaceChildren(...rows);
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

function showTimeline(answer) {
  // One column per window, one row per label some window ranked in its top-k; colour = that label's score there.
  const canvas = $("timeline"), ctx = canvas.getContext("2d");
  const names = answer.labels || labels;
  const { rows, ranked } = timelineRows(answer.windows, names);
  const index = new Map(rows.map((name, row) => [name, row]));
  canvas.height = ROW_HEIGHT * Math.max(1, rows.length);
  const left = NAME_WIDTH, width = canvas.width - left, step = width / answer.windows.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui";
  ctx.fillStyle = "#222";
  fittedNames(ctx, rows, left - 8).forEach((name, row) => ctx.fillText(name, 4, row * ROW_HEIGHT + ROW_HEIGHT * 0.7));
  answer.windows.forEach((w, column) => {
    w.labels.forEach((label, i) => {
      if (!index.has(label) || w.scores[i] === null) return; // null: a NaN score, left blank
      ctx.fillStyle = `rgba(59, 110, 165, ${w.scores[i]})`;
      ctx.fillRect(left + column * step, index.get(label) * ROW_HEIGHT, Math.ceil(step), ROW_HEIGHT - 1);
    });
  });
  canvas.onmousemove = (event) => { // the full name of the row under the pointer
    const box = canvas.getBoundingClientRect();
    canvas.title = rows[Math.floor((event.clientY - box.top) / box.height * rows.length)] || "";
  };
  const last = answer.windows[answer.windows.length - 1], k = answer.windows[0].labels.length;
  const leftOut = names.length - rows.length;
  $("timeline-caption").textContent = `${answer.windows.length} windows, 0–${last.end.toFixed(1)} s: ` +
    `${rows.length} label${rows.length === 1 ? "" : "s"}, those in some window's top-${k}` +
    (ranked > rows.length ? ` (the ${rows.length} highest peaks of ${ranked})` : "") +
    (leftOut > 0 ? `; ${leftOut} of the model's ${names.length} labels not drawn` : "");
  $("timeline-section").hidden = false;
}

let recorder = null;
async function toggleRecording() {
  if (recorder) {
    recorder.stop();
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
  $("record").textContent = "Stop";
  $("record").classList.add("recording");
  setStatus("recording… press Stop to classify");
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) classify(file, file.name);
});
$("record").addEventListener("click", toggleRecording);
$("api-key").addEventListener("change", loadInfo);
loadInfo();
