// WhatsApp Web through Baileys, as the events the server forwards: 'status' (connecting,
// connected, disconnected, logged-out), 'qr' (a code to scan), 'message' (one text message in
// the Python bridge's fields, plus who wrote in a group), and sendMessage(jid, text).

import { EventEmitter } from 'node:events';
import makeWASocket, {
  Browsers,
  DisconnectReason,
  fetchLatestBaileysVersion,
  makeCacheableSignalKeyStore,
  useMultiFileAuthState,
} from '@whiskeysockets/baileys';
import pino from 'pino';

const MAX_BACKOFF_MS = 60_000;

function textOf(message) {
  const m = message ?? {};
  return (
    m.conversation ||
    m.extendedTextMessage?.text ||
    m.imageMessage?.caption ||
    m.videoMessage?.caption ||
    m.documentMessage?.caption ||
    ''
  );
}

export class WhatsApp extends EventEmitter {
  constructor(stateDir, log = console) {
    super();
    this.stateDir = stateDir;
    this.log = log;
    this.status = 'connecting';
    this.qr = null;
    this.sock = null;
    this.backoffMs = 1000;
    this.logger = pino({ level: process.env.BAILEYS_LOG_LEVEL || 'warn' });
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.emit('status', status);
  }

  async start() {
    const { state, saveCreds } = await useMultiFileAuthState(this.stateDir);
    let version;
    try {
      ({ version } = await fetchLatestBaileysVersion());
    } catch {
      version = undefined; // Baileys' built-in version
    }
    const sock = makeWASocket({
      version,
      auth: { creds: state.creds, keys: makeCacheableSignalKeyStore(state.keys, this.logger) },
      logger: this.logger,
      browser: Browsers.ubuntu('nanobot'),
      syncFullHistory: false,
      markOnlineOnConnect: false,
    });
    this.sock = sock;
    sock.ev.on('creds.update', saveCreds);
    sock.ev.on('connection.update', (u) => this.connectionUpdate(u));
    sock.ev.on('messages.upsert', ({ messages, type }) => {
      if (type !== 'notify') return;
      for (const m of messages) this.incoming(m);
    });
  }

  connectionUpdate({ connection, lastDisconnect, qr }) {
    if (qr) {
      this.qr = qr;
      this.emit('qr', qr);
    }
    if (connection === 'open') {
      this.qr = null;
      this.backoffMs = 1000;
      this.setStatus('connected');
    } else if (connection === 'close') {
      const code = lastDisconnect?.error?.output?.statusCode;
      if (code === DisconnectReason.loggedOut) {
        this.setStatus('logged-out');
        this.emit('error', `WhatsApp logged this device out: delete ${this.stateDir}/* and run nanobot channels login whatsapp`);
        return;
      }
      this.setStatus('disconnected');
      const wait = code === DisconnectReason.restartRequired ? 0 : this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      this.log.warn(`WhatsApp connection closed (${code ?? 'no code'}); reconnecting in ${wait} ms`);
      setTimeout(() => this.start().catch((e) => this.emit('error', e.message)), wait);
    }
  }

  incoming(m) {
    const key = m.key ?? {};
    if (key.fromMe || key.remoteJid === 'status@broadcast' || !key.remoteJid) return;
    const content = textOf(m.message);
    if (!content) return;
    const isGroup = key.remoteJid.endsWith('@g.us');
    this.emit('message', {
      id: key.id ?? '',
      sender: key.remoteJid,
      pn: key.remoteJidAlt ?? '',
      content,
      timestamp: Number(m.messageTimestamp ?? 0),
      isGroup,
      participant: isGroup ? key.participant ?? '' : '',
      participantPn: isGroup ? key.participantAlt ?? key.participantPn ?? '' : '',
    });
  }

  async sendMessage(to, text) {
    if (!this.sock || this.status !== 'connected') throw new Error(`WhatsApp is ${this.status}`);
    await this.sock.sendMessage(to, { text });
  }
}
