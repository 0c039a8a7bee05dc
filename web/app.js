// Minimal page: upload + create a job (POST /jobs/upload), list jobs (GET /jobs), follow one (SSE).
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

function text(tag, value) {
  const el = document.createElement(tag);
  el.textContent = value == null ? "" : String(value);
  return el;
}

function renderJobs(jobs) {
  const rows = document.getElementById("job-rows");
  rows.replaceChildren();
  for (const job of jobs) {
    const tr = document.createElement("tr");
    tr.append(text("td", job.job_id.slice(0, 8)));
    const state = text("td", job.state + (job.error ? ": " + job.error.message : ""));
    state.className = "state-" + job.state;
    tr.append(state, text("td", job.stage || ""), text("td", Math.round(job.progress * 100) + "%"));
    const outputs = document.createElement("td");
    outputs.className = "outputs";
    for (const name of job.outputs) {
      const a = text("a", name);
      a.href = job.output_urls[name];
      outputs.append(a);
    }
    tr.append(outputs);
    const actions = document.createElement("td");
    if (job.state === "queued" || job.state === "running") {
      const cancel = text("button", "Cancel");
      cancel.type = "button";
      cancel.addEventListener("click", () => cancelJob(job.job_id));
      actions.append(cancel);
    }
    tr.append(actions);
    rows.append(tr);
  }
}

async function refresh() {
  const res = await fetch("/jobs?limit=50", { headers: { Accept: "application/json" } });
  if (res.ok) renderJobs((await res.json()).data.jobs);
}

async function cancelJob(jobId) {
  await fetch("/jobs/" + jobId, { method: "DELETE", headers: { "X-CSRF-Token": csrfToken } });
  refresh();
}

function follow(jobId) {
  const events = new EventSource("/jobs/" + jobId + "/events");
  events.addEventListener("job", () => refresh());
  events.onerror = () => events.close();
}

function submitJob(event) {
  event.preventDefault();
  const form = event.target;
  const status = document.getElementById("form-status");
  const bar = document.getElementById("upload-progress");
  const xhr = new XMLHttpRequest();  // XHR, not fetch: it reports upload progress
  xhr.open("POST", form.action);
  xhr.setRequestHeader("X-CSRF-Token", csrfToken);
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; });
  xhr.addEventListener("load", () => {
    bar.hidden = true;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (err) { body = { message: xhr.statusText }; }
    status.textContent = body.message || "";
    if (xhr.status === 202) { follow(body.data.job_id); refresh(); form.reset(); }
  });
  xhr.addEventListener("error", () => { bar.hidden = true; status.textContent = "upload failed"; });
  bar.hidden = false;
  bar.value = 0;
  status.textContent = "uploading…";
  xhr.send(new FormData(form));
}

document.getElementById("job-form").addEventListener("submit", submitJob);
refresh();
setInterval(refresh, 5000);
