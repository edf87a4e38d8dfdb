// The upload page: one photo → POST /segment → the PNG beside the photo, with a download link.
"use strict";

const $ = (id) => document.getElementById(id);
const page = {
  file: $("file"),
  drop: $("drop"),
  keyRow: $("key-row"),
  key: $("api-key"),
  busy: $("busy"),
  error: $("error"),
  photo: $("photo-preview"),
  photoEmpty: $("photo-empty"),
  result: $("result-image"),
  resultEmpty: $("result-empty"),
  download: $("download"),
  summary: $("summary"),
  insights: $("insights"),
};
const maxBytes = Number(document.body.dataset.maxUploadBytes) || Infinity;
const state = { photo: null, photoUrl: null, resultUrl: null, request: null, described: null };

// What each failing status means for someone uploading a photo; the service's `detail` follows.
const FAILURE = {
  400: "This image is damaged or unreadable",
  401: "An API key is needed (or the one entered is wrong)",
  413: "This photo is too large",
  415: "Unsupported file",
  422: "The request was refused",
  503: "The service is busy or still starting; try again in a moment",
};

function fileSize(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function showError(message) {
  page.error.textContent = message;
  page.error.hidden = false;
}

function clearError() {
  page.error.hidden = true;
  page.error.textContent = "";
}

function setBusy(busy) {
  page.busy.hidden = !busy;
  document.body.setAttribute("aria-busy", String(busy));
}

function clearResult() {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = null;
  page.result.hidden = true;
  page.result.removeAttribute("src");
  page.resultEmpty.hidden = false;
  page.download.hidden = true;
  page.summary.textContent = "";
}

function selectedOutput() {
  return document.querySelector('input[name="output"]:checked').value;
}

function stem(name) {
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name) || "photo";
}

async function failureMessage(response) {
  let detail = "";
  try {
    const problem = await response.json(); // problem+json: `detail` is always a sentence
    detail = String(problem.detail ?? problem.title ?? "");
  } catch {
    detail = response.statusText;
  }
  const meaning = FAILURE[response.status] || `The service answered ${response.status}`;
  return detail ? `${meaning}: ${detail}` : meaning;
}

function percent(confidence) {
  return `${Math.round(confidence * 100)} %`;
}

// One line from the JSON summary: how many pets, and species and breed when the model reports them.
// With no pet found, the model's species/breed guess for the photo would only mislead: left out.
function describe(summary) {
  if (!summary.pet_found) return "No pet found in this photo.";
  const count = summary.pets.length;
  const parts = [count === 1 ? "1 pet found" : `${count} pets found`];
  if (summary.species) parts.push(`${summary.species.label} (${percent(summary.species.confidence)})`);
  if (summary.breed_top3) {
    const [first, ...others] = summary.breed_top3;
    const rest = others.map((b) => `${b.label} ${percent(b.confidence)}`).join(", ");
    parts.push(`breed: ${first.label} (${percent(first.confidence)})${rest ? `; then ${rest}` : ""}`);
  }
  return parts.join(" · ");
}

// The JSON summary does not change with the chosen output: asked once per photo.
async function showInsights(photo, headers, signal) {
  const body = new FormData();
  body.append("file", photo, photo.name);
  const response = await fetch("/segment?output=json", { method: "POST", body, headers, signal });
  if (!response.ok) return; // the image request has already shown what the service refuses
  const summary = await response.json();
  page.insights.textContent = describe(summary);
  // The model card's caveat: the model always looks for a pet, even in photos of people or objects.
  page.insights.title = summary.pet_found ? "The model can mistake people or objects for pets." : "";
  page.insights.hidden = false;
  state.described = photo;
}

function choose(file) {
  if (!file) return;
  clearError();
  clearResult();
  page.insights.hidden = true;
  page.insights.textContent = "";
  state.described = null;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photo = file;
  state.photoUrl = URL.createObjectURL(file);
  page.photo.src = state.photoUrl;
  page.photo.hidden = false;
  page.photoEmpty.hidden = true;
  if (file.size > maxBytes) {
    showError(`This photo is too large: ${fileSize(file.size)}; the limit is ${fileSize(maxBytes)}.`);
    return;
  }
  segment();
}

async function segment() {
  if (!state.photo) return;
  if (state.request) state.request.abort(); // only the latest choice counts
  const request = new AbortController();
  state.request = request;
  const output = selectedOutput();
  // Only a cut-out has transparent pixels worth showing on a checkerboard.
  page.result.parentElement.classList.toggle("checker", output === "cutout");
  const body = new FormData();
  body.append("file", state.photo, state.photo.name);
  const headers = page.key.value ? { "X-API-Key": page.key.value } : {};
  clearError();
  clearResult();
  setBusy(true);
  const started = performance.now();
  try {
    const response = await fetch(`/segment?output=${output}`, {
      method: "POST", body, headers, signal: request.signal,
    });
    if (!response.ok) {
      if (response.status === 401) page.keyRow.hidden = false;
      showError(await failureMessage(response));
      return;
    }
    const png = await response.blob();
    state.resultUrl = URL.createObjectURL(png);
    page.result.src = state.resultUrl;
    page.result.hidden = false;
    page.resultEmpty.hidden = true;
    page.download.href = state.resultUrl;
    page.download.download = `${stem(state.photo.name)}.${output}.png`;
    page.download.hidden = false;
    const version = response.headers.get("X-Model-Version");
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    page.summary.textContent =
      `${output} of ${state.photo.name} · ${fileSize(png.size)} PNG · ${seconds} s` +
      (version ? ` · model version ${version}` : "");
    if (state.described !== state.photo) await showInsights(state.photo, headers, request.signal);
  } catch (error) {
    if (error.name !== "AbortError") showError(`Could not reach the service: ${error.message}`);
  } finally {
    if (state.request === request) {
      state.request = null;
      setBusy(false);
    }
  }
}

async function showModel() {
  for (let attempt = 0; attempt < 30; attempt += 1) {
    try {
      const response = await fetch("/v1/model");
      if (response.ok) {
        const model = await response.json();
        $("model-info").textContent = `model: ${model.name} version ${model.version}`;
        const legend = $("legend");
        legend.replaceChildren(...model.classes.map((cls) => {
          const item = document.createElement("li");
          const swatch = document.createElement("span");
          swatch.className = "swatch";
          swatch.style.background = `rgb(${cls.color.slice(0, 3).join(",")})`;
          item.append(swatch, cls.name);
          return item;
        }));
        return;
      }
    } catch {
      // the service may be restarting; try again below
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  $("model-info").textContent = "model: not available yet";
}

page.photo.addEventListener("error", () => {
  if (page.photo.getAttribute("src")) {
    page.photo.hidden = true;
    page.photoEmpty.hidden = false;
    page.photoEmpty.textContent = "This browser cannot preview this file";
  }
});
page.file.addEventListener("change", () => choose(page.file.files[0]));
$("example").addEventListener("click", async () => {
  const response = await fetch("/static/example.jpg");
  if (!response.ok) return showError("The example photo is missing from this installation");
  page.file.value = ""; // the chooser no longer names what is shown
  choose(new File([await response.blob()], "example.jpg", { type: "image/jpeg" }));
});
document.querySelectorAll('input[name="output"]').forEach((radio) => {
  radio.addEventListener("change", segment);
});
page.key.addEventListener("change", segment);
// Enter in the key field would submit the form, i.e. reload the page and lose photo, result and key:
// it runs the segmentation instead (nothing happens while no photo is chosen).
$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  segment();
});
// Dropping anywhere on the page must not navigate away to the file.
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
page.drop.addEventListener("dragenter", () => page.drop.classList.add("dragging"));
page.drop.addEventListener("dragleave", () => page.drop.classList.remove("dragging"));
page.drop.addEventListener("drop", (event) => {
  page.drop.classList.remove("dragging");
  choose(event.dataTransfer.files[0]);
});

page.keyRow.hidden = document.body.dataset.apiKeyRequired !== "true";
$("limit").textContent = Number.isFinite(maxBytes) ? fileSize(maxBytes) : "the service's limit";
showModel();
