// Node's ws as a client peer for wsstream (tests/interop/test_interop_node.py).
//
//   node client.mjs URL SCENARIO [--no-deflate] [--deflate JSON] [--protocols a,b]
//                   [--code N|none] [--reason TEXT]
//
// Prints one JSON line with what it saw, then exits. --deflate gives ws's
// perMessageDeflate options as a JSON object (threshold 0 unless set).
//   big:   send 16 MiB binary and 16 MiB text, read both back, close 1000.
//   ping:  ping with a payload, record the pong's payload, close 1000.
//   close: send "hi", read it back, close with --code/--reason.
//   wait:  send "hi", then read until the server closes.
//   vanish: send "bye", then exit at once, without a Close frame.
//   text:  send chat-sized JSON events and 64 KiB of text, read them back,
//          close 1000 (extensions_header: the 101's Sec-WebSocket-Extensions).
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "no-deflate": { type: "boolean", default: false },
    deflate: { type: "string", default: "" },
    protocols: { type: "string", default: "" },
    code: { type: "string", default: "1000" },
    reason: { type: "string", default: "" },
  },
});
const [url, scenario] = positionals;
const MIB = 1024 * 1024;

function digest(data, isBinary) {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  return {
    type: isBinary ? "binary" : "text",
    length: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

// The same 16 MiB payloads as bigMessages() in test_interop_node.py.
function bigMessages() {
  const binary = Buffer.alloc(16 * MIB);
  for (let i = 0; i < binary.length; i++) binary[i] = i & 0xff;
  const text = "é".repeat(8 * MIB); // 16 MiB of UTF-8
  return [
    [binary, true],
    [text, false],
  ];
}

const protocols = values.protocols ? values.protocols.split(",") : [];
// The same as compressible_messages() in tests/peers/websockets_peer.py.
function compressibleMessages() {
  const users = ["alice", "bob", "carol", "dave"];
  const events = [];
  for (let i = 0; i < 40; i++) {
    events.push(JSON.stringify({
      type: "message", id: i, user: users[i % 4],
      text: `message ${i}: the build is green again, shipping the fix to staging`,
    }));
  }
  let text = "";
  for (let i = 0; i < 1200; i++) {
    text += `line ${i}: the quick brown fox jumps over the lazy dog\n`;
  }
  return [...events, text.slice(0, 64 * 1024)];
}

const ws = new WebSocket(url, protocols, {
  perMessageDeflate: values.deflate
    ? { threshold: 0, ...JSON.parse(values.deflate) }
    : !values["no-deflate"],
  maxPayload: 64 * 1024 * 1024,
});
const report = { sent: [], received: [] };
ws.on("upgrade", (response) => {
  report.extensions_header = response.headers["sec-websocket-extensions"] ?? "";
});
ws.on("error", (error) => {
  report.error = String(error);
});
ws.on("open", () => {
  report.protocol = ws.protocol;
  report.extensions = ws.extensions;
  if (scenario === "big") {
    const messages = bigMessages();
    for (const [data, isBinary] of messages) {
      report.sent.push(digest(data, isBinary));
      ws.send(data, { binary: isBinary });
    }
    ws.on("message", (data, isBinary) => {
      report.received.push(digest(data, isBinary));
      if (report.received.length === messages.length) ws.close(1000);
    });
  } else if (scenario === "text") {
    const messages = compressibleMessages();
    for (const text of messages) {
      report.sent.push(digest(text, false));
      ws.send(text);
    }
    ws.on("message", (data, isBinary) => {
      report.received.push(digest(data, isBinary));
      if (report.received.length === messages.length) ws.close(1000);
    });
  } else if (scenario === "ping") {
    ws.on("pong", (data) => {
      report.pong = data.toString("utf8");
      ws.close(1000);
    });
    ws.ping("ping-payload ✓");
  } else if (scenario === "vanish") {
    // Once "bye" is written, exit without a Close frame (the kernel ends TCP).
    ws.send("bye", () => process.exit(0));
  } else if (scenario === "close") {
    ws.send("hi");
    ws.once("message", (data, isBinary) => {
      report.received.push(digest(data, isBinary));
      if (values.code === "none") ws.close();
      else ws.close(Number(values.code), values.reason);
    });
  } else if (scenario === "wait") {
    ws.send("hi");
    ws.on("message", (data, isBinary) => report.received.push(digest(data, isBinary)));
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
});
ws.on("close", (code, reason) => {
  report.close_code = code;
  report.close_reason = reason.toString("utf8");
  process.stdout.write(JSON.stringify(report) + "\n");
});
