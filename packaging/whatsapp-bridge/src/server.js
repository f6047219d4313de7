// The WebSocket side of the bridge, in the Python nanobot's protocol: a client's first frame must
// be {"type":"auth","token"} within the auth timeout (else close 4001), with the right token
// (else close 4003); then it receives every WhatsApp event and may send {"type":"send","to","text"}.
// WhatsApp itself is injected (`whatsapp`: an EventEmitter with sendMessage, status and qr), so
// this file is tested without it.

import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { WebSocketServer } from 'ws';

export const CLOSE_AUTH_TIMEOUT = 4001;
export const CLOSE_BAD_TOKEN = 4003;

// Hashing first makes both sides 32 bytes, so neither the comparison time nor an early length
// check tells an attacker anything about the token's length or content.
export function tokenMatches(expected, given) {
  if (typeof given !== 'string') return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(given, 'utf8').digest();
  return timingSafeEqual(a, b);
}

// A JID the bridge will send to: user@server, nothing else.
const JID = /^[0-9A-Za-z._:+-]{1,64}@[a-z.]{1,32}$/;

export class BridgeServer {
  constructor(cfg, whatsapp, log = console) {
    this.cfg = cfg;
    this.whatsapp = whatsapp;
    this.log = log;
    this.clients = new Set();
    this.pending = 0;
    this.onEvent = {
      message: (m) => this.broadcast({ type: 'message', ...m }),
      status: (status) => this.broadcast({ type: 'status', status }),
      qr: (qr) => this.broadcast({ type: 'qr', qr }),
      error: (error) => this.broadcast({ type: 'error', error: String(error) }),
    };
  }

  // Listen; resolves to the address (a port number or the socket path).
  async start() {
    this.http = http.createServer((req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n');
    });
    this.wss = new WebSocketServer({ server: this.http, maxPayload: this.cfg.maxPayload });
    this.wss.on('connection', (ws) => this.accept(ws));
    for (const [event, handler] of Object.entries(this.onEvent)) this.whatsapp.on(event, handler);
    const { socketPath, host, port } = this.cfg;
    if (socketPath) fs.rmSync(socketPath, { force: true });
    await new Promise((resolve, reject) => {
      this.http.once('error', reject);
      if (socketPath) this.http.listen(socketPath, resolve);
      else this.http.listen(port, host, resolve);
    });
    if (socketPath) {
      fs.chmodSync(socketPath, 0o660);
      return socketPath;
    }
    return this.http.address().port;
  }

  async close() {
    for (const [event, handler] of Object.entries(this.onEvent)) this.whatsapp.off(event, handler);
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    await new Promise((resolve) => this.wss.close(() => resolve()));
    await new Promise((resolve) => this.http.close(() => resolve()));
  }

  accept(ws) {
    ws.on('error', (e) => this.log.warn(`client connection: ${e.message}`));
    if (this.clients.size >= this.cfg.maxClients) {
      ws.close(1013, 'Too many clients');
      return;
    }
    if (!this.cfg.token) {
      // Only reachable on a Unix socket (checkConfig): its file mode is the access control.
      this.admit(ws);
      return;
    }
    if (this.pending >= this.cfg.maxPending) {
      ws.close(1013, 'Too many unauthenticated connections');
      return;
    }
    this.pending++;
    let counted = true;
    const done = () => {
      if (counted) this.pending--;
      counted = false;
    };
    const timer = setTimeout(() => {
      done();
      ws.close(CLOSE_AUTH_TIMEOUT, 'Auth timeout');
    }, this.cfg.authTimeoutMs);
    ws.on('close', () => {
      clearTimeout(timer);
      done();
    });
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      done();
      let msg = null;
      try {
        msg = isBinary ? null : JSON.parse(data.toString('utf8'));
      } catch {
        msg = null;
      }
      if (msg && msg.type === 'auth' && tokenMatches(this.cfg.token, msg.token)) {
        this.admit(ws);
      } else {
        this.log.warn('refused a client: wrong or missing token');
        ws.close(CLOSE_BAD_TOKEN, 'Invalid token');
      }
    });
  }

  admit(ws) {
    // Checked again here: clients that connected together pass the check in accept() before
    // any of them is admitted.
    if (this.clients.size >= this.cfg.maxClients) {
      ws.close(1013, 'Too many clients');
      return;
    }
    this.clients.add(ws);
    ws.on('close', () => this.clients.delete(ws));
    ws.on('message', (data, isBinary) => this.command(ws, data, isBinary));
    // Tell a newcomer where WhatsApp stands, so `nanobot channels login` need not wait for a change.
    this.send(ws, { type: 'status', status: this.whatsapp.status ?? 'unknown' });
    if (this.whatsapp.qr) this.send(ws, { type: 'qr', qr: this.whatsapp.qr });
  }

  async command(ws, data, isBinary) {
    let cmd;
    try {
      cmd = isBinary ? null : JSON.parse(data.toString('utf8'));
    } catch {
      cmd = null;
    }
    if (!cmd || typeof cmd !== 'object') {
      this.send(ws, { type: 'error', error: 'frames must be JSON objects' });
      return;
    }
    if (cmd.type === 'auth') return; // a client that authenticates on an open Unix socket
    if (cmd.type !== 'send') {
      this.send(ws, { type: 'error', error: `unknown command type ${JSON.stringify(cmd.type)}` });
      return;
    }
    if (typeof cmd.to !== 'string' || !JID.test(cmd.to) || typeof cmd.text !== 'string') {
      this.send(ws, { type: 'error', error: 'send needs "to" (a WhatsApp JID) and "text" (a string)' });
      return;
    }
    try {
      await this.whatsapp.sendMessage(cmd.to, cmd.text);
      this.send(ws, { type: 'sent', to: cmd.to });
    } catch (e) {
      this.send(ws, { type: 'error', error: `sending to ${cmd.to}: ${e?.message ?? e}` });
    }
  }

  send(ws, obj) {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj));
  }

  broadcast(obj) {
    for (const ws of this.clients) this.send(ws, obj);
  }
}
