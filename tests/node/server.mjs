// Node's ws as a server peer for wsstream (tests/interop/test_interop_node.py).
//
//   node server.mjs [--no-deflate] [--deflate JSON]
//
// Prints "PORT <n>" once it listens on 127.0.0.1, then one JSON line per
// connection that ended: {path, close_code, close_reason, received, extensions,
// extensions_header}. --deflate gives ws's perMessageDeflate options as a JSON
// object (threshold 0 unless set: every message compressed).
// Paths: /echo echoes; /close/<code>?reason=<text> closes at once (/close/none:
// a Close frame without a body); /drop waits for one message, then destroys
// the socket without a Close frame.
import { WebSocketServer } from "ws";

const deflateAt = process.argv.indexOf("--deflate");
const deflate = deflateAt >= 0
  ? { threshold: 0, ...JSON.parse(process.argv[deflateAt + 1]) }
  : !process.argv.includes("--no-deflate");
const server = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: deflate,
  maxPayload: 64 * 1024 * 1024,
});

// The Sec-WebSocket-Extensions line of each 101, by request.
const answered = new WeakMap();
server.on("headers", (headers, request) => {
  const line = headers.find((h) => h.toLowerCase().startsWith("sec-websocket-extensions:"));
  answered.set(request, line ? line.slice(line.indexOf(":") + 1).trim() : "");
});

server.on("listening", () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});

server.on("connection", (ws, request) => {
  const url = new URL(request.url, "http://localhost");
  let received = 0;
  ws.on("close", (code, reason) => {
    const report = {
      path: url.pathname,
      close_code: code,
      close_reason: reason.toString("utf8"),
      received,
      extensions: ws.extensions,
      extensions_header: answered.get(request) ?? "",
    };
    process.stdout.write(JSON.stringify(report) + "\n");
  });
  ws.on("error", () => {});
  if (url.pathname === "/echo") {
    ws.on("message", (data, isBinary) => {
      received += 1;
      ws.send(data, { binary: isBinary });
    });
  } else if (url.pathname.startsWith("/close/")) {
    const code = url.pathname.slice("/close/".length);
    if (code === "none") ws.close();
    else ws.close(Number(code), url.searchParams.get("reason") ?? "");
  } else if (url.pathname === "/drop") {
    ws.once("message", () => {
      received += 1;
      ws.terminate();
    });
  } else {
    ws.close(4404, "unknown path");
  }
});
