// The real bridge server with WhatsApp faked, for nanobot's interop test (tests/tests/whatsapp.rs):
// stdout: {"port":N} once listening, then {"to","text"} for each message sent to "WhatsApp";
// stdin: one JSON line per WhatsApp message to deliver. BRIDGE_TOKEN as for the real bridge.

import { EventEmitter } from 'node:events';
import readline from 'node:readline';
import { checkConfig, configFromEnv } from '../src/config.js';
import { BridgeServer } from '../src/server.js';

class FakeWhatsApp extends EventEmitter {
  status = 'connected';
  qr = null;
  async sendMessage(to, text) {
    console.log(JSON.stringify({ to, text }));
  }
}

const { cfg } = checkConfig(configFromEnv());
const whatsapp = new FakeWhatsApp();
const server = new BridgeServer({ ...cfg, port: 0 }, whatsapp, { warn: (m) => console.error(m), log() {} });
console.log(JSON.stringify({ port: await server.start() }));
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line.trim()) whatsapp.emit('message', JSON.parse(line));
}
await server.close();
