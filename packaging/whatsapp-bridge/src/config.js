// The bridge's settings, from the environment (BRIDGE_TOKEN and AUTH_DIR as the Python nanobot's
// bridge names them) and a few flags, checked before anything listens: a bridge that would accept
// anyone refuses to start instead.

import net from 'node:net';

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 3001,
  authTimeoutMs: 5000,
  // The gateway sends replies of at most 4096 characters; anything much larger is not ours.
  maxPayload: 256 * 1024,
  maxClients: 4,
  // Connections still owing their auth frame: without a bound, anyone who can reach the port
  // holds open as many sockets as the process may have, each for the auth timeout.
  maxPending: 16,
  stateDir: '/var/lib/nanobot-whatsapp-bridge',
});

// The security guide's example value: a bridge "protected" by it is protected by nothing.
export const EXAMPLE_TOKEN = 'your-secret-token-here';
const SHORT_TOKEN = 16;

export class ConfigError extends Error {}

const USAGE = `usage: nanobot-whatsapp-bridge [--host ADDR] [--port N] [--socket PATH] [--allow-non-loopback]
environment: BRIDGE_TOKEN (required unless --socket), BRIDGE_HOST, BRIDGE_PORT, BRIDGE_SOCKET,
             BRIDGE_ALLOW_NON_LOOPBACK=1, AUTH_DIR (WhatsApp session, default ${DEFAULTS.stateDir})`;

function integer(name, value, min, max) {
  if (!/^\d+$/.test(String(value)) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  }
  return Number(value);
}

export function configFromEnv(env = process.env, argv = process.argv.slice(2)) {
  const cfg = {
    ...DEFAULTS,
    token: env.BRIDGE_TOKEN ?? '',
    host: env.BRIDGE_HOST || DEFAULTS.host,
    port: env.BRIDGE_PORT ? integer('BRIDGE_PORT', env.BRIDGE_PORT, 1, 65535) : DEFAULTS.port,
    socketPath: env.BRIDGE_SOCKET || '',
    allowNonLoopback: env.BRIDGE_ALLOW_NON_LOOPBACK === '1',
    // systemd's StateDirectory= sets STATE_DIRECTORY.
    stateDir: env.AUTH_DIR || env.STATE_DIRECTORY || DEFAULTS.stateDir,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (i + 1 >= argv.length) throw new ConfigError(`${argv[i]} needs a value\n${USAGE}`);
      return argv[++i];
    };
    switch (argv[i]) {
      case '--host': cfg.host = value(); break;
      case '--port': cfg.port = integer('--port', value(), 1, 65535); break;
      case '--socket': cfg.socketPath = value(); break;
      case '--allow-non-loopback': cfg.allowNonLoopback = true; break;
      case '--help': throw new ConfigError(USAGE);
      default: throw new ConfigError(`unknown argument ${JSON.stringify(argv[i])}\n${USAGE}`);
    }
  }
  return cfg;
}

export function isLoopback(host) {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

// The config as given, and what the operator should hear; throws ConfigError when it is unsafe.
export function checkConfig(cfg) {
  const warnings = [];
  if (cfg.socketPath) {
    if (!cfg.socketPath.startsWith('/')) {
      throw new ConfigError(`BRIDGE_SOCKET must be an absolute path, not ${JSON.stringify(cfg.socketPath)}`);
    }
  } else {
    if (!cfg.token) {
      throw new ConfigError(
        'BRIDGE_TOKEN is not set: the bridge refuses to listen on TCP without a shared secret. ' +
          'Generate one (openssl rand -hex 32), set it here and in channels.whatsapp.bridgeToken, ' +
          'or listen on a Unix socket (--socket PATH) instead.',
      );
    }
    if (!isLoopback(cfg.host)) {
      if (!cfg.allowNonLoopback) {
        throw new ConfigError(
          `refusing to listen on ${cfg.host}, which is reachable from other hosts: the token and every ` +
            'message would cross the network unencrypted. Use 127.0.0.1, or pass --allow-non-loopback ' +
            '(BRIDGE_ALLOW_NON_LOOPBACK=1) if you really mean it.',
        );
      }
      warnings.push(`listening on ${cfg.host}, reachable from other hosts: traffic is not encrypted`);
    }
  }
  if (cfg.token === EXAMPLE_TOKEN) {
    throw new ConfigError(`BRIDGE_TOKEN is the security guide's example value; generate a secret (openssl rand -hex 32)`);
  }
  if (cfg.token && cfg.token.length < SHORT_TOKEN) {
    warnings.push(`BRIDGE_TOKEN is only ${cfg.token.length} characters; use at least 32 random ones (openssl rand -hex 32)`);
  }
  return { cfg, warnings };
}
