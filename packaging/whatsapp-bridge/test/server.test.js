// The bridge's WebSocket side against a fake WhatsApp: auth, timeouts, caps, routing.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { DEFAULTS } from '../src/config.js';
import { BridgeServer, tokenMatches } from '../src/server.js';

const TOKEN = 'b1f0c3a9e8d74c2a9f1e0d3c4b5a6978';

class FakeWhatsApp extends EventEmitter {
  constructor() {
    super();
    this.status = 'connected';
    this.qr = null;
    this.sent = [];
  }
  async sendMessage(to, text) {
    if (text === 'fail') throw new Error('not on WhatsApp');
    this.sent.push({ to, text });
  }
}

let servers = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

async function bridge(over = {}) {
  const wa = new FakeWhatsApp();
  const quiet = { warn() {}, log() {} };
  const server = new BridgeServer({ ...DEFAULTS, port: 0, token: TOKEN, ...over }, wa, quiet);
  const where = await server.start();
  servers.push(server);
  const url = over.socketPath ? `ws+unix://${where}` : `ws://127.0.0.1:${where}`;
  return { wa, server, url };
}

// A client that records every frame and how the connection closed.
function client(url) {
  const ws = new WebSocket(url);
  const frames = [];
  const waiters = [];
  ws.on('message', (d) => {
    frames.push(JSON.parse(d.toString()));
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = async (pred) => {
    for (;;) {
      const f = frames.find(pred);
      if (f) return f;
      await new Promise((r) => waiters.push(r));
    }
  };
  return { ws, frames, closed, opened, next };
}

test('tokens compare by hash, whatever their length', () => {
  assert.equal(tokenMatches(TOKEN, TOKEN), true);
  assert.equal(tokenMatches(TOKEN, TOKEN.slice(0, -1)), false);
  assert.equal(tokenMatches(TOKEN, TOKEN + 'x'), false);
  assert.equal(tokenMatches(TOKEN, ''), false);
  assert.equal(tokenMatches(TOKEN, undefined), false);
  assert.equal(tokenMatches(TOKEN, 42), false);
});

test('the right token is admitted: status first, then messages both ways', async () => {
  const { wa, url } = await bridge();
  const c = client(url);
  await c.opened;
  c.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  assert.deepEqual(await c.next((f) => f.type === 'status'), { type: 'status', status: 'connected' });
  wa.emit('message', { id: '1', sender: '1234567890@s.whatsapp.net', pn: '', content: 'hi', timestamp: 1, isGroup: false });
  const m = await c.next((f) => f.type === 'message');
  assert.equal(m.content, 'hi');
  assert.equal(m.sender, '1234567890@s.whatsapp.net');
  c.ws.send(JSON.stringify({ type: 'send', to: '1234567890@s.whatsapp.net', text: 'hello' }));
  assert.deepEqual(await c.next((f) => f.type === 'sent'), { type: 'sent', to: '1234567890@s.whatsapp.net' });
  assert.deepEqual(wa.sent, [{ to: '1234567890@s.whatsapp.net', text: 'hello' }]);
  c.ws.send(JSON.stringify({ type: 'send', to: '1234567890@s.whatsapp.net', text: 'fail' }));
  assert.match((await c.next((f) => f.type === 'error')).error, /not on WhatsApp/);
  c.ws.send(JSON.stringify({ type: 'send', to: 'not a jid', text: 'x' }));
  await c.next((f) => f.type === 'error' && /JID/.test(f.error));
  c.ws.send('garbage');
  await c.next((f) => f.type === 'error' && /JSON objects/.test(f.error));
  assert.equal(wa.sent.length, 1);
  c.ws.close();
});

test('a wrong token is closed with 4003 and sees nothing', async () => {
  const { wa, url } = await bridge();
  for (const first of [
    JSON.stringify({ type: 'auth', token: 'wrong' }),
    JSON.stringify({ type: 'auth', token: TOKEN.slice(0, 8) }),
    JSON.stringify({ type: 'auth' }),
    JSON.stringify({ type: 'send', to: '1@s.whatsapp.net', text: 'x' }),
    'not json',
  ]) {
    const c = client(url);
    await c.opened;
    c.ws.send(first);
    const { code } = await c.closed;
    assert.equal(code, 4003, first);
    wa.emit('message', { id: '2', sender: '1@s.whatsapp.net', content: 'secret' });
    assert.deepEqual(c.frames, [], first);
  }
  assert.deepEqual(wa.sent, []);
});

test('no auth within the time limit is closed with 4001', async () => {
  const { url } = await bridge({ authTimeoutMs: 200 });
  const c = client(url);
  await c.opened;
  const t0 = Date.now();
  const { code } = await c.closed;
  assert.equal(code, 4001);
  assert.ok(Date.now() - t0 >= 150, 'closed before the timeout');
  assert.deepEqual(c.frames, []);
});

test('the auth timeout is 5 s by default', () => {
  assert.equal(DEFAULTS.authTimeoutMs, 5000);
});

test('an oversize frame closes the connection (1009), before or after auth', async () => {
  const { wa, url } = await bridge({ maxPayload: 1024 });
  const pre = client(url);
  await pre.opened;
  pre.ws.send(JSON.stringify({ type: 'auth', token: TOKEN, pad: 'x'.repeat(2000) }));
  assert.equal((await pre.closed).code, 1009);
  const c = client(url);
  await c.opened;
  c.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  await c.next((f) => f.type === 'status');
  c.ws.send(JSON.stringify({ type: 'send', to: '1234567890@s.whatsapp.net', text: 'y'.repeat(2000) }));
  assert.equal((await c.closed).code, 1009);
  assert.deepEqual(wa.sent, []);
});

test('a pending QR code is shown to a client that connects later', async () => {
  const { wa, url } = await bridge();
  wa.status = 'connecting';
  wa.qr = '2@abc';
  const c = client(url);
  await c.opened;
  c.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  assert.deepEqual(await c.next((f) => f.type === 'qr'), { type: 'qr', qr: '2@abc' });
  wa.emit('status', 'connected');
  await c.next((f) => f.type === 'status' && f.status === 'connected');
  c.ws.close();
});

test('a Unix socket without a token admits clients, with or without an auth frame', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-'));
  const sock = path.join(dir, 'bridge.sock');
  const { wa, url } = await bridge({ token: '', socketPath: sock });
  assert.equal(fs.statSync(sock).mode & 0o777, 0o660);
  const c = client(url);
  await c.opened;
  c.ws.send(JSON.stringify({ type: 'auth', token: '' }));
  await c.next((f) => f.type === 'status');
  c.ws.send(JSON.stringify({ type: 'send', to: '1234567890@s.whatsapp.net', text: 'hi' }));
  await c.next((f) => f.type === 'sent');
  assert.equal(wa.sent.length, 1);
  c.ws.close();
  await c.closed;
  fs.rmSync(dir, { recursive: true, force: true });
});

test('clients beyond the limit are turned away', async () => {
  const { url } = await bridge({ maxClients: 1 });
  const a = client(url);
  await a.opened;
  a.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  await a.next((f) => f.type === 'status');
  const b = client(url);
  assert.equal((await b.closed).code, 1013);
  a.ws.close();
});

test('clients that connect together and then authenticate still count against the limit', async () => {
  const { url, server } = await bridge({ maxClients: 2 });
  // All connect before any authenticates: the limit must hold when they are admitted.
  const cs = Array.from({ length: 5 }, () => client(url));
  await Promise.all(cs.map((c) => c.opened));
  for (const c of cs) c.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  const outcome = await Promise.all(
    cs.map((c) => Promise.race([c.next((f) => f.type === 'status').then(() => 'admitted'), c.closed.then((x) => x.code)])),
  );
  assert.equal(outcome.filter((o) => o === 'admitted').length, 2, JSON.stringify(outcome));
  assert.equal(outcome.filter((o) => o === 1013).length, 3, JSON.stringify(outcome));
  assert.equal(server.clients.size, 2);
  for (const c of cs) c.ws.close();
});

test('connections that never authenticate are bounded, and their slots come back', async () => {
  const { url } = await bridge({ maxPending: 3, authTimeoutMs: 300 });
  const idle = Array.from({ length: 3 }, () => client(url));
  await Promise.all(idle.map((c) => c.opened));
  // A fourth one while three still owe their auth frame: turned away at once.
  const extra = client(url);
  assert.equal((await extra.closed).code, 1013);
  // The three time out (4001); then a client with the token gets in.
  for (const c of idle) assert.equal((await c.closed).code, 4001);
  const ok = client(url);
  await ok.opened;
  ok.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  await ok.next((f) => f.type === 'status');
  // Slots are freed by authenticating too, not only by timing out.
  const more = Array.from({ length: 3 }, () => client(url));
  await Promise.all(more.map((c) => c.opened));
  for (const c of more) c.ws.send(JSON.stringify({ type: 'auth', token: 'wrong' }));
  for (const c of more) assert.equal((await c.closed).code, 4003);
  const again = client(url);
  await again.opened;
  again.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
  await again.next((f) => f.type === 'status');
  ok.ws.close();
  again.ws.close();
});
