// Talking to the service: JSON calls with the CSRF token, an upload with progress, and errors in plain
// words (ApiError.message is what the page shows; it always includes the server's own message).
import { t } from "./i18n/index.js";
import { formatBytes } from "./format.js";

export const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || "";
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
  const headers = { Accept: "application/json" };
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
