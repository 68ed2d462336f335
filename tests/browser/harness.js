// The test harness shared by the pages: runs each behaviour with a deadline,
// records what it observed (or the error it hit), talks to the server's
// /control endpoint for the steps that need both sides, and posts the
// results as JSON over a WebSocket to /report, where tests/interop/test_browser.py
// reads them. Plain script, no modules, no dependencies.
"use strict";

const BASE = `ws://${location.host}`;
const PAGE = document.documentElement.dataset.page;
// A second wsstream server that /control cancels on "shutdown".
const SHUTDOWN_BASE =
  `ws://${location.hostname}:${new URLSearchParams(location.search).get("shutdown")}`;
const results = {};

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Run one behaviour: its observed value goes to results[name].value, or its
// error to results[name].error. Behaviours run one after the other.
async function behaviour(name, fn, ms = 20000) {
  const started = performance.now();
  try {
    results[name] = { value: await withTimeout(fn(), ms, name) };
  } catch (e) {
    results[name] = { error: `${e && e.name}: ${e && e.message}\n${e && e.stack}` };
  }
  console.log(`[${PAGE}] ${name}: ${JSON.stringify(results[name]).slice(0, 300)}` +
              ` (${Math.round(performance.now() - started)} ms)`);
}

// Incompressible bytes (permessage-deflate is negotiated with the server, so
// compressible data would not fill any buffer).
function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

// The /control channel: a classic WebSocket (it must never be held up by the
// backpressure under test) with a queue of the server's messages.
class Control {
  constructor(step) {
    this.queue = [];
    this.waiters = [];
    this.ws = new WebSocket(`${BASE}/control?step=${encodeURIComponent(step)}`);
    this.ws.onmessage = (event) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(event.data); else this.queue.push(event.data);
    };
    this.open = new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error("control channel failed"));
    });
  }
  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  async expect(wanted) {
    const got = await this.next();
    if (got !== wanted) throw new Error(`control: expected ${wanted}, got ${got}`);
  }
  send(message) {
    this.ws.send(message);
  }
  close() {
    this.ws.close(1000);
  }
}

async function report(extra = {}) {
  const payload = JSON.stringify({ page: PAGE, results, ...extra });
  const ws = new WebSocket(`${BASE}/report`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("report channel failed"));
  });
  ws.send(payload);
  console.log(`[${PAGE}] reported ${Object.keys(results).length} results`);
}

window.addEventListener("error", (event) => {
  report({ fatal: `${event.message} at ${event.filename}:${event.lineno}` });
});
window.addEventListener("unhandledrejection", (event) => {
  report({ fatal: `unhandled rejection: ${event.reason && event.reason.stack || event.reason}` });
});
