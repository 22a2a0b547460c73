// Calls of the node's JSON API from the browser, and errors shown in the page in words.

/** An error answer of the node: {"error": {"code", "message", ...}}. */
export class ApiError extends Error {
  constructor(message, { code = "http-error", status = 0, body = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.body = body;
  }
}

/**
 * fetch `path` on this node and return its JSON answer. A plain object `body` is sent as
 * JSON; a Blob/ArrayBuffer/FormData/string as is. Throws ApiError on any non-2xx answer
 * (code and message from the node's error shape) or when the node cannot be reached.
 */
export async function api(path, { method, body, headers } = {}) {
  const init = { method: method || (body === undefined ? "GET" : "POST"), headers: { ...(headers || {}) } };
  if (body !== undefined) {
    const raw =
      body instanceof Blob || body instanceof ArrayBuffer || ArrayBuffer.isView(body) ||
      body instanceof FormData || typeof body === "string";
    if (raw) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      if (!Object.keys(init.headers).some((h) => h.toLowerCase() === "content-type")) {
        init.headers["Content-Type"] = "application/json";
      }
    }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(`cannot reach the node: ${err.message}`, { code: "node-unreachable" });
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (type.includes("application/json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  } else {
    data = await response.text();
  }
  if (!response.ok) {
    if (data && typeof data === "object" && typeof data.error === "string") {
      // /v2 answers the Open Inference Protocol's {"error": message, "code", ...}:
      // callers always see the project's {"error": {"code", "message", ...}}
      const { error: text, ...rest } = data;
      data = { error: { message: text, ...rest } };
    }
    const error = data && typeof data === "object" && data.error ? data.error : null;
    const message = error ? error.message : `the node answered HTTP ${response.status}`;
    throw new ApiError(message, {
      code: error ? error.code : `http-${response.status}`,
      status: response.status,
      body: data,
    });
  }
  return data;
}

/** Words for an error: the node's message (and its code), never a stack trace. */
export function errorText(error) {
  if (error instanceof ApiError) return `${error.message} (${error.code})`;
  if (error && typeof error.message === "string" && error.message) return error.message;
  return String(error);
}

/** Write `error` in words into `element` (made role="alert"); a null error clears it. */
export function showError(element, error) {
  if (!element) return;
  element.setAttribute("role", "alert");
  if (error === null || error === undefined) {
    element.textContent = "";
    element.hidden = true;
    return;
  }
  element.textContent = errorText(error);
  element.hidden = false;
}
