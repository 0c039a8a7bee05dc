// Talking to the service: JSON calls with the CSRF token, an upload with progress, and errors in plain
// words (ApiError.message is what the page shows; it always includes the server's own message).
// With API keys on, every request carries "Authorization: Bearer <key>": the key the user typed, kept in this
// tab's sessionStorage only. Browsers cannot add that header to EventSource, <video src> or a download link,
// so job events are read with fetch (eventStream) and media and downloads are fetched into blob: URLs.
import { t } from "./i18n/index.js";
import { formatBytes } from "./format.js";

export const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
const KEY_STORAGE = "vt.apiKey";

export function apiKey() {
  try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* storage off: the key lasts until the page is left */ }
  for (const url of blobUrls.values()) url.then(URL.revokeObjectURL, () => {});
  blobUrls.clear();
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}
let maxFileSize = 0;
export function setMaxFileSize(bytes) { maxFileSize = bytes; }

export class ApiError extends Error {
  constructor(status, code, serverMessage) {
    const friendly = code && t("error." + code) !== "error." + code
      ? t("error." + code, { limit: formatBytes(maxFileSize) })
      : status ? t("error.server", { status }) : t("error.network");
    super(serverMessage ? `${friendly} ${t("error.said", { message: serverMessage })}` : friendly);
    this.status = status;
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

function errorFrom(status, text) {
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: a proxy's page, say */ }
  const code = body?.error?.code || null;
  const message = body?.message || body?.error?.message || (text && text.length < 300 ? text.trim() : "");
  return new ApiError(status, code, message);
}

// fetch + envelope: returns {status, body}; throws ApiError for a non-2xx answer or no answer.
export async function call(method, url, json) {
  const headers = withKey({ Accept: "application/json" });
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: json === undefined ? undefined : JSON.stringify(json),
      credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, null, "");
  }
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// POST multipart with upload progress. onProgress(loaded, total). Returns {promise, abort}.
export function upload(url, formData, onProgress) {
  const xhr = new XMLHttpRequest(); // not fetch: only XHR reports upload progress
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(withKey())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.upload.addEventListener("load", () => onProgress(-1, -1));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { resolve(JSON.parse(xhr.responseText)); } catch { reject(new ApiError(xhr.status, null, "")); }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null, "")));
    xhr.addEventListener("abort", () => reject(Object.assign(new Error(t("upload.cancelled")), { aborted: true })));
    xhr.send(formData);
  });
  return { promise, abort: () => xhr.abort() };
}

// A resumable upload (POST /files/uploads, then one PUT per chunk of chunkBytes with Content-Range), for big
// files: every request is small, and a chunk that fails is sent again from the offset the server holds (HEAD),
// up to `retries` times in a row. onProgress(loaded, total); onChunk() after each stored chunk. Resolves with
// the stored file ({file_id, ...}); abort() stops and cancels the session (DELETE). Returns {promise, abort}.
export function resumableUpload(file, { chunkBytes, onProgress, onChunk = () => {}, retries = 5 }) {
  let xhr = null;
  let aborted = false;
  let uploadId = null;
  const cancelled = () => Object.assign(new Error(t("upload.cancelled")), { aborted: true });
  const cancelSession = () => { if (uploadId) call("DELETE", `/files/uploads/${uploadId}`).catch(() => {}); };
  const putChunk = (offset) => new Promise((resolve, reject) => {
    const end = Math.min(offset + chunkBytes, file.size);
    xhr = new XMLHttpRequest();
    xhr.open("PUT", `/files/uploads/${uploadId}`);
    xhr.setRequestHeader("Content-Range", `bytes ${offset}-${end - 1}/${file.size}`);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(withKey())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => onProgress(offset + e.loaded, file.size));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { resolve(JSON.parse(xhr.responseText).data); } catch { reject(new ApiError(xhr.status, null, "")); }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, null, "")));
    xhr.addEventListener("abort", () => reject(cancelled()));
    xhr.send(file.slice(offset, end));
  });
  const serverOffset = async () => {
    const response = await fetch(`/files/uploads/${uploadId}`, { method: "HEAD", headers: withKey(), cache: "no-store",
      credentials: "same-origin" });
    if (!response.ok) throw new ApiError(response.status, response.status === 404 ? "upload_not_found" : null, "");
    return Number(response.headers.get("Upload-Offset"));
  };
  // Worth another try: no answer, a timeout, a wrong offset or a busy session (409), a rate limit, a 5xx.
  const retryable = (err) => !err.status || [408, 409, 429].includes(err.status) || err.status >= 500;
  const promise = (async () => {
    const created = await call("POST", "/files/uploads", { filename: file.name, size: file.size,
      content_type: file.type || null });
    uploadId = created.body.data.upload_id;
    if (aborted) { cancelSession(); throw cancelled(); }
    let offset = 0;
    let failures = 0;
    onProgress(0, file.size);
    for (;;) {
      if (aborted) throw cancelled();
      try {
        const state = await putChunk(offset);
        onChunk(state);
        if (state.complete) return state.file;
        offset = state.offset;
        failures = 0;
      } catch (err) {
        if (aborted || err.aborted) throw cancelled();
        if (!retryable(err) || ++failures > retries) throw err;
        await new Promise((r) => setTimeout(r, 300 * failures));
        if (aborted) throw cancelled();
        offset = await serverOffset();
      }
    }
  })();
  const abort = () => {
    aborted = true;
    xhr?.abort();
    cancelSession();
  };
  return { promise, abort };
}

// Server-Sent Events over fetch (EventSource cannot send the key). Calls onEvent(name, data) per event;
// resolves when the server ends the stream, rejects on an error answer or a dropped connection.
// Returns {done, close}.
export function eventStream(url, onEvent) {
  const controller = new AbortController();
  const done = (async () => {
    let response;
    try {
      response = await fetch(url, { headers: withKey({ Accept: "text/event-stream" }), cache: "no-store",
        credentials: "same-origin", signal: controller.signal });
    } catch (err) {
      throw controller.signal.aborted ? Object.assign(new Error("closed"), { aborted: true }) : new ApiError(0, null, "");
    }
    if (!response.ok) throw errorFrom(response.status, await response.text());
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { name: "message", data: [] };
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) return;
      buffer += value;
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length; // a "\r\n" may span two chunks
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut);
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) onEvent(event.name, event.data.join("\n"));
          event = { name: "message", data: [] };
        } else if (line.startsWith("event:")) {
          event.name = line.slice(6).trim();
        } else if (line.startsWith("data:")) {
          event.data.push(line.slice(5).replace(/^ /, ""));
        }
      }
    }
  })();
  return { done, close: () => controller.abort() };
}

// POST /v1/audio/speech (JSON in, audio out): the audio as a Blob; throws ApiError (the envelope's message).
export async function speech(body) {
  let response;
  try {
    response = await fetch("/v1/audio/speech", { method: "POST", credentials: "same-origin", cache: "no-store",
      headers: withKey({ "Content-Type": "application/json", "X-CSRF-Token": csrfToken }), body: JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null, "");
  }
  if (!response.ok) throw errorFrom(response.status, await response.text());
  return response.blob();
}

// A URL a <video>, <track> or <audio> can load: the URL itself without a key (streamed, seekable with
// Range); with a key, the file fetched with it into a blob: URL (kept per URL until the key changes).
const blobUrls = new Map();

export function mediaUrl(url) {
  if (!url || !apiKey()) return Promise.resolve(url);
  if (!blobUrls.has(url)) {
    const loading = fetchBlob(url).then((blob) => URL.createObjectURL(blob));
    loading.catch(() => blobUrls.delete(url));
    blobUrls.set(url, loading);
  }
  return blobUrls.get(url);
}

async function fetchBlob(url) {
  let response;
  try {
    response = await fetch(url, { headers: withKey(), credentials: "same-origin" });
  } catch {
    throw new ApiError(0, null, "");
  }
  if (!response.ok) throw errorFrom(response.status, await response.text());
  return response.blob();
}

// A download link that works with a key too: without one the browser follows href; with one the click
// fetches the file with the key and saves it under the link's download name.
export function keyedDownload(link, onError) {
  link.addEventListener("click", async (event) => {
    if (!apiKey()) return;
    event.preventDefault();
    let blobUrl;
    try {
      blobUrl = URL.createObjectURL(await fetchBlob(link.href));
    } catch (err) {
      onError(err);
      return;
    }
    const save = Object.assign(document.createElement("a"), { href: blobUrl, download: link.download || "" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
  });
  return link;
}
