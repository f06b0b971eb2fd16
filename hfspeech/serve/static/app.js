// The page of `hfspeech serve`: upload a file or record the microphone, POST the audio to `/` (the Hub's
// audio-classification contract, with ?timeline=true), draw the top-k (and a multi-label model's active labels,
// green, past top-k too) as bars and the windows as a heat map.
// Plain browser JavaScript: no build step, nothing loaded from outside the server.
"use strict";

const $ = (id) => document.getElementById(id);
let labels = [];

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
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = `${Math.max(0, Math.min(1, p.score)) * 100}%`;
    bar.appendChild(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = p.score.toFixed(3);
    row.append(label, bar, score);
    return row;
  });
  $("result").replaceChildren(...rows);
}

function showTimeline(answer) {
  // One column per window, one row per label; colour = score of that label in that window.
  const canvas = $("timeline"), ctx = canvas.getContext("2d");
  const names = answer.labels || labels;
  const rowHeight = Math.max(14, Math.floor(canvas.height / Math.max(1, names.length)));
  canvas.height = rowHeight * names.length;
  const left = 110, width = canvas.width - left, step = width / answer.windows.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui";
  names.forEach((name, row) => {
    ctx.fillStyle = "#222";
    ctx.fillText(name, 4, row * rowHeight + rowHeight * 0.7);
  });
  answer.windows.forEach((w, column) => {
    w.labels.forEach((label, i) => {
      const row = names.indexOf(label);
      if (row < 0) return;
      ctx.fillStyle = `rgba(59, 110, 165, ${w.scores[i]})`;
      ctx.fillRect(left + column * step, row * rowHeight, Math.ceil(step), rowHeight - 1);
    });
  });
  const last = answer.windows[answer.windows.length - 1];
  $("timeline-caption").textContent = `${answer.windows.length} windows, 0–${last.end.toFixed(1)} s ` +
    `(each window's top-${answer.windows[0].labels.length} labels)`;
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
