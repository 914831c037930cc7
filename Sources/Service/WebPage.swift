/// The web page `restore serve` serves at `/`: plain HTML, CSS and JavaScript, no build step, nothing loaded
/// from elsewhere (the Content-Security-Policy forbids it), so it works offline.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>restore — diffusion image restoration</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header><h1>restore</h1><p>Diffusion-model image restoration on this computer's CPU. Nothing leaves this machine.</p></header>
<main>
<section id="input-panel">
  <div id="drop" tabindex="0">
    <p>Drop a photo here, or <label for="file" class="link">pick one</label> (PNG, JPEG, WebP).</p>
    <input type="file" id="file" accept="image/png,image/jpeg,image/webp">
    <p class="error" id="error-file"></p>
  </div>
  <div id="stage" hidden>
    <div id="paint-wrap"><img id="photo" alt="your photo"><canvas id="mask-canvas"></canvas></div>
    <p id="photo-info"></p>
  </div>
  <form id="controls">
    <label>Task
      <select id="task">
        <option value="upscale:4">Make it 4× bigger (super-resolution)</option>
        <option value="upscale:2">Make it 2× bigger</option>
        <option value="upscale:3">Make it 3× bigger</option>
        <option value="denoise">Remove noise</option>
        <option value="dejpeg">Remove JPEG artifacts</option>
        <option value="deblur">Sharpen a blurred photo</option>
        <option value="inpaint">Fill holes (paint them on the photo)</option>
        <option value="colorize">Colorize a gray photo</option>
      </select>
    </label>
    <label>Method <select id="method"></select></label>
    <p class="hint" id="method-hint"></p>
    <div id="mask-tools" hidden>
      <label>Brush <input type="range" id="brush" min="2" max="80" value="16"></label>
      <button type="button" id="clear-mask">Clear mask</button>
      <p class="error" id="error-mask"></p>
    </div>
    <label>Steps <input type="number" id="steps" min="1" max="1000" placeholder="model default"></label>
    <p class="error" id="error-steps"></p>
    <label>Seed <input type="number" id="seed" min="0" value="1234"></label>
    <label id="average-label">Samples averaged <input type="number" id="average" min="1" max="16" value="1"></label>
    <p class="error" id="error-options"></p>
    <label id="token-label" hidden>Access token <input type="password" id="token" autocomplete="off"></label>
    <div class="buttons">
      <button type="submit" id="run" disabled>Restore</button>
      <button type="button" id="cancel" disabled>Cancel</button>
    </div>
    <p class="error" id="error-run"></p>
  </form>
</section>
<div id="output">
<section id="progress-panel" hidden>
  <progress id="progress" max="1" value="0"></progress>
  <p id="status"></p>
  <img id="preview" alt="the current estimate">
</section>
<section id="result-panel" hidden>
  <h2>Before / after</h2>
  <div id="compare-scroll">
    <div id="compare">
      <img id="before" alt="before">
      <div id="after-clip"><img id="after" alt="after"></div>
    </div>
  </div>
  <label>Before ◀ ▶ after <input type="range" id="slider" min="0" max="100" value="50"></label>
  <label>Zoom <input type="range" id="zoom" min="1" max="8" step="0.5" value="1"></label>
  <p><a id="download" download>Download the result (PNG)</a></p>
  <div id="report"></div>
</section>
</div>
</main>
</body>
</html>
"""#

    static let style = #"""
[hidden] { display: none !important; }
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f2; color: #222; }
header { background: #263238; color: #fff; padding: 0.6em 1.2em; }
header h1 { margin: 0; font-size: 1.4em; } header p { margin: 0.2em 0 0; opacity: 0.8; }
main { display: grid; grid-template-columns: minmax(280px, 420px) 1fr; gap: 1.2em; padding: 1.2em; }
section { background: #fff; border-radius: 8px; padding: 1em; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
#drop { border: 2px dashed #90a4ae; border-radius: 8px; padding: 1em; text-align: center; }
#drop.over { background: #e3f2fd; border-color: #1e88e5; }
#file { position: absolute; width: 1px; height: 1px; opacity: 0; } .link { color: #1565c0; text-decoration: underline; cursor: pointer; }
#paint-wrap { position: relative; display: block; width: 100%; margin-top: 0.8em; }
#photo { display: block; width: 100%; image-rendering: pixelated; } #mask-canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; opacity: 0.55; cursor: crosshair; }
#mask-canvas.off { pointer-events: none; opacity: 0; }
form label { display: block; margin: 0.6em 0 0.2em; } select, input[type=number], input[type=password] { width: 100%; padding: 0.3em; }
.buttons { margin-top: 1em; display: flex; gap: 0.6em; } button { padding: 0.5em 1.2em; }
.error { color: #c62828; min-height: 1em; margin: 0.2em 0; font-size: 0.9em; } .hint { color: #555; font-size: 0.9em; }
progress { width: 100%; height: 1.2em; } #preview:not([src]) { display: none; } #preview { image-rendering: pixelated; width: 192px; margin-top: 0.5em; }
#compare-scroll { overflow: auto; max-height: 70vh; border: 1px solid #ccc; }
#output section + section { margin-top: 1.2em; }
#compare { position: relative; width: 100%; max-width: 1024px; transform-origin: 0 0; }
#compare img { display: block; image-rendering: pixelated; }
#before { width: 100%; } #after-clip { position: absolute; left: 0; top: 0; height: 100%; overflow: hidden; border-right: 2px solid #ff5722; }
#after { max-width: none; height: auto; }
#report { font-size: 0.95em; line-height: 1.5; }
@media (max-width: 800px) { main { grid-template-columns: 1fr; } }
"""#

    static let script = #"""
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { file: null, width: 0, height: 0, job: null, source: null, painting: false, painted: false };
  // Per task: the methods the page offers, the task's own choice first ("auto"), with what each does.
  const methods = {
    "upscale:4": [["auto", "DiffIR ×4: one transformer pass guided by a prior diffused in 4 steps (bundled model); with samples averaged: ResShift's mean of N samples"], ["ddnm", "DDNM with a bicubic ×4 operator on the bundled prior"]],
    "upscale:2": [["auto", "DDNM with a bicubic ×2 operator on the bundled prior"]],
    "upscale:3": [["auto", "DDNM with a bicubic ×3 operator on the bundled prior"]],
    denoise: [["auto", "DDNM+ with σ estimated from the photo"], ["dreamclean", "DreamClean, blind"]],
    dejpeg: [["auto", "DreamClean, blind"]],
    deblur: [["auto", "DreamClean, blind"]],
    inpaint: [["auto", "DDNM with your mask: painted pixels are filled, the rest kept exactly"], ["dreamclean", "DreamClean* with your mask (DDNM's correction inside)"]],
    colorize: [["auto", "DDNM with the gray operator"], ["dreamclean", "DreamClean* with the gray operator"]]
  };
  /// The job JSON for the chosen task and method: a task, or a method with its options.
  function jobFor(t, method, steps) {
    const seed = Number($("seed").value || 0);
    if (method === "auto") {
      const job = { seed: seed };
      if (t.startsWith("upscale:")) { job.task = "upscale"; job.scale = Number(t.split(":")[1]); } else { job.task = t; }
      if (steps) job.steps = steps;
      if (t === "upscale:4" && Number($("average").value) > 1) job.average = Number($("average").value);
      return job;
    }
    if (method === "ddnm") return { method: "ddnm", seed: seed, options: Object.assign({ degradation: "bicubic:4" }, steps ? { steps: steps } : {}) };
    const options = steps ? { steps: steps, inversionSteps: steps } : {};
    if (t === "inpaint") options.degradation = "mask:mask";
    if (t === "colorize") options.degradation = "gray";
    return { method: "dreamclean", seed: seed, options: options };
  }
  function token() { return sessionStorage.getItem("restore-token") || ""; }
  function headers() { const t = token(); return t ? { Authorization: "Bearer " + t } : {}; }
  function withToken(url) { const t = token(); return t ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t) : url; }
  function clearErrors() { document.querySelectorAll(".error").forEach((e) => { e.textContent = ""; }); }
  function showError(message) {
    const m = message.toLowerCase();
    const target = m.includes("mask") ? "error-mask" : m.includes("step") ? "error-steps"
      : (m.includes("image") || m.includes("upload") || m.includes("pixels") || m.includes("format")) ? "error-file"
      : (m.includes("seed") || m.includes("average") || m.includes("scale") || m.includes("option")) ? "error-options" : "error-run";
    $(target).textContent = message;
    if (target === "error-mask") $("mask-tools").hidden = false;
  }
  function taskValue() { return $("task").value; }
  function updateMethod() {
    const choice = methods[taskValue()].find((m) => m[0] === $("method").value) || methods[taskValue()][0];
    $("method-hint").textContent = choice[1];
  }
  function updateTask() {
    const t = taskValue();
    const select = $("method"); select.textContent = "";
    methods[t].forEach((m, i) => { const o = document.createElement("option"); o.value = m[0]; o.textContent = i === 0 ? "Task default" : { ddnm: "DDNM", dreamclean: "DreamClean" }[m[0]]; select.appendChild(o); });
    updateMethod();
    $("mask-tools").hidden = t !== "inpaint";
    $("mask-canvas").classList.toggle("off", t !== "inpaint");
    $("average-label").hidden = t !== "upscale:4";
  }
  function loadFile(file) {
    clearErrors();
    if (!file) return;
    if (!/^image\/(png|jpeg|webp)$/.test(file.type)) { $("error-file").textContent = "Pick a PNG, JPEG or WebP image."; return; }
    state.file = file;
    const url = URL.createObjectURL(file);
    const img = $("photo");
    img.onload = () => {
      state.width = img.naturalWidth; state.height = img.naturalHeight;
      const c = $("mask-canvas"); c.width = state.width; c.height = state.height;
      const g = c.getContext("2d"); g.fillStyle = "#000"; g.fillRect(0, 0, c.width, c.height); state.painted = false;
      $("photo-info").textContent = file.name + ": " + state.width + "×" + state.height + " pixels";
      $("stage").hidden = false; $("run").disabled = false; $("before").src = url;
    };
    img.src = url;
  }
  function paint(event) {
    if (!state.painting || taskValue() !== "inpaint") return;
    const c = $("mask-canvas"), r = c.getBoundingClientRect();
    const x = (event.clientX - r.left) * c.width / r.width, y = (event.clientY - r.top) * c.height / r.height;
    const g = c.getContext("2d"); g.fillStyle = "#fff"; g.beginPath();
    g.arc(x, y, Number($("brush").value) * c.width / r.width / 2, 0, 2 * Math.PI); g.fill(); state.painted = true;
  }
  function maskBlob() { return new Promise((resolve) => $("mask-canvas").toBlob(resolve, "image/png")); }
  function describe(report) {
    const r = JSON.parse(report); const parts = [];
    parts.push("Restored with <b>" + r.method + "</b> (task " + (r.command || r.method) + ") on the model " + (r.model || "?") + " (SHA-256 " + String(r.model_sha256 || "").slice(0, 12) + "…).");
    parts.push("Input " + (r.input_size || "?") + " → output " + (r.output_size || "?") + "; seed " + r.seed + (r.steps ? ", " + r.steps + " steps" : "") + (r.network_evaluations ? ", " + r.network_evaluations + " network evaluations" : "") + (r.windows > 1 ? ", " + r.windows + " windows" : "") + ".");
    if (r.consistency_rms !== undefined) parts.push("Consistency with the input ‖Ax̂ − y‖: " + Number(r.consistency_rms).toFixed(4) + " (RMS on the 0–1 scale; 0 means the result reproduces the input exactly under the degradation).");
    if (r.sigma_y !== undefined && r.sigma_y_estimated) parts.push("Noise σ estimated from the photo: " + Number(r.sigma_y).toFixed(3) + ".");
    parts.push("Took " + Number(r.elapsed_s || 0).toFixed(1) + " s on " + (r.cpu || "this CPU") + " with " + (r.threads || "?") + " threads.");
    const div = $("report"); div.textContent = "";
    parts.forEach((p) => { const el = document.createElement("p"); el.innerHTML = p.replace(/[&<>]/g, (ch) => ch === "&" ? "&amp;" : ch === "<" ? "&lt;" : "&gt;").replace(/&lt;(\/?)b&gt;/g, "<$1b>"); div.appendChild(el); });
  }
  function updateCompare() {
    $("after").style.width = $("compare").clientWidth + "px";  // the same size as the before image under it
    $("after-clip").style.width = $("slider").value + "%";
    const z = Number($("zoom").value); $("compare").style.transform = "scale(" + z + ")";
  }
  function showProgress(s) {
    const total = s.total || 0, done = s.done || 0;
    $("progress").max = Math.max(total, 1); $("progress").value = done;
    let text = s.state + (s.stage ? " — " + s.stage : "") + (total ? " " + done + "/" + total : "") + (s.note ? " (" + s.note + ")" : "");
    if (s.position !== undefined && s.position !== null && s.state === "queued") text += " — position " + (s.position + 1) + " in the queue";
    if (s.eta_s !== undefined) text += " — about " + Math.ceil(s.eta_s) + " s left";
    $("status").textContent = text;
  }
  function finish(s) {
    $("cancel").disabled = true; $("run").disabled = false; state.source && state.source.close();
    showProgress(s);
    $("preview").removeAttribute("src");
    if (s.state === "done") {
      $("zoom").value = 1;
      const url = withToken("/jobs/" + s.id + "/result");
      $("result-panel").hidden = false;
      $("after").onload = updateCompare;
      $("after").src = url; $("download").href = url; $("download").setAttribute("download", "restored.png");
      describe(s.report);
    } else if (s.error) { showError(s.error); }
  }
  async function run(event) {
    event.preventDefault(); clearErrors();
    if (!state.file) { $("error-file").textContent = "Pick a photo first."; return; }
    $("result-panel").hidden = true; $("report").textContent = "";
    const t = taskValue(); const job = jobFor(t, $("method").value, $("steps").value ? Number($("steps").value) : 0);
    const form = new FormData(); form.append("image", state.file, state.file.name); form.append("job", JSON.stringify(job));
    if (t === "inpaint") {
      if (!state.painted) { showError("Paint the holes on the photo first (the mask)."); return; }
      form.append("mask", await maskBlob(), "mask.png");
    }
    $("run").disabled = true; $("result-panel").hidden = true; $("progress-panel").hidden = false; $("preview").removeAttribute("src");
    let answer;
    try { answer = await fetch("/jobs", { method: "POST", body: form, headers: headers() }); }
    catch (e) { $("run").disabled = false; showError("The service did not answer: " + e); return; }
    const body = await answer.json().catch(() => ({}));
    if (answer.status === 401) { $("token-label").hidden = false; $("run").disabled = false; showError("This service needs its access token."); return; }
    if (!answer.ok) { $("run").disabled = false; $("progress-panel").hidden = true; showError(body.error || ("HTTP " + answer.status)); return; }
    state.job = body.id; $("cancel").disabled = false; showProgress(body);
    const source = new EventSource(withToken("/jobs/" + body.id + "/events")); state.source = source;
    source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    source.addEventListener("preview", (e) => { $("preview").src = "data:image/png;base64," + JSON.parse(e.data).png; });
    source.addEventListener("end", (e) => finish(JSON.parse(e.data)));
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) return; };
  }
  async function cancel() {
    if (!state.job) return;
    $("cancel").disabled = true;
    await fetch("/jobs/" + state.job, { method: "DELETE", headers: headers() }).catch(() => {});
  }
  document.addEventListener("DOMContentLoaded", () => {
    updateTask();
    $("task").addEventListener("change", updateTask);
    $("method").addEventListener("change", updateMethod);
    $("file").addEventListener("change", (e) => loadFile(e.target.files[0]));
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); loadFile(e.dataTransfer.files[0]); });
    const c = $("mask-canvas");
    c.addEventListener("pointerdown", (e) => { state.painting = true; paint(e); });
    c.addEventListener("pointermove", paint);
    window.addEventListener("pointerup", () => { state.painting = false; });
    $("clear-mask").addEventListener("click", () => { const g = c.getContext("2d"); g.fillStyle = "#000"; g.fillRect(0, 0, c.width, c.height); state.painted = false; });
    $("controls").addEventListener("submit", run);
    $("cancel").addEventListener("click", cancel);
    $("slider").addEventListener("input", updateCompare);
    $("zoom").addEventListener("input", updateCompare);
    window.addEventListener("resize", updateCompare);
    $("token").addEventListener("change", (e) => sessionStorage.setItem("restore-token", e.target.value));
  });
})();
"""#
}
