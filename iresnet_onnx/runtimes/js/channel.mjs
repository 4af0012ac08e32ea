// A binary WebSocket between this Node.js process and one runner page (RFC 6455, the little this
// needs: one client, binary messages, close). A call's arrays cross it as raw bytes: page.evaluate
// carries JSON only (base64 both ways, about 15 ms per 256 KiB on a loaded 2-core machine) and a
// fetch() per call goes through Chromium's network service; a socket that stays open does neither.
//
// Message, both ways: [u32 LE header length][header: UTF-8 JSON][payload].

import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export function message(header, payload = Buffer.alloc(0)) {
  const text = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32LE(text.length, 0);
  return Buffer.concat([length, text, payload]);
}

export function parseMessage(buffer) {
  const size = buffer.readUInt32LE(0);
  return { header: JSON.parse(buffer.subarray(4, 4 + size).toString("utf8")), payload: buffer.subarray(4 + size) };
}

export class Channel {
  // accept the upgrade request of `request` on `socket`
  constructor(request, socket) {
    const key = request.headers["sec-websocket-key"];
    const accept = createHash("sha1").update(key + GUID).digest("base64");
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.setNoDelay(true);
    this.socket = socket;
    this.buffered = Buffer.alloc(0);
    this.fragments = [];
    this.waiting = null;
    socket.on("data", (chunk) => this.receive(chunk));
    socket.on("close", () => this.fail(new Error("the page closed its channel")));
    socket.on("error", (error) => this.fail(error));
  }

  // send one binary message and wait for the page's answer
  request(buffer) {
    if (this.waiting !== null) return Promise.reject(new Error("a request is already waiting"));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(frame(0x2, buffer));
    });
  }

  fail(error) {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(error);
  }

  close() {
    this.socket.end(frame(0x8, Buffer.alloc(0)));
  }

  receive(chunk) {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    for (;;) {
      const parsed = readFrame(this.buffered);
      if (parsed === null) return;
      this.buffered = this.buffered.subarray(parsed.end);
      if (parsed.opcode === 0x8) return this.fail(new Error("the page closed its channel"));
      if (parsed.opcode === 0x9) this.socket.write(frame(0xa, parsed.data));  // ping → pong
      if (parsed.opcode !== 0x0 && parsed.opcode !== 0x2) continue;
      this.fragments.push(parsed.data);
      if (!parsed.fin) continue;
      const whole = Buffer.concat(this.fragments);
      this.fragments = [];
      const waiting = this.waiting;
      this.waiting = null;
      waiting?.resolve(whole);
    }
  }
}

// a server frame: FIN, no mask
function frame(opcode, data) {
  let head;
  if (data.length < 126) head = Buffer.from([0x80 | opcode, data.length]);
  else if (data.length < 65536) {
    head = Buffer.alloc(4);
    head.writeUInt8(0x80 | opcode, 0);
    head.writeUInt8(126, 1);
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head.writeUInt8(0x80 | opcode, 0);
    head.writeUInt8(127, 1);
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  return Buffer.concat([head, data]);
}

// a client frame (always masked) from the front of `buffer`, or null until it is all there
function readFrame(buffer) {
  if (buffer.length < 2) return null;
  const fin = (buffer[0] & 0x80) !== 0;
  const opcode = buffer[0] & 0x0f;
  const masked = (buffer[1] & 0x80) !== 0;
  let length = buffer[1] & 0x7f;
  let at = 2;
  if (length === 126) {
    if (buffer.length < 4) return null;
    length = buffer.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return null;
    length = Number(buffer.readBigUInt64BE(2));
    at = 10;
  }
  const mask = masked ? buffer.subarray(at, at + 4) : null;
  at += masked ? 4 : 0;
  if (buffer.length < at + length) return null;
  const data = Buffer.from(buffer.subarray(at, at + length));
  if (mask !== null) for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
  return { fin, opcode, data, end: at + length };
}
