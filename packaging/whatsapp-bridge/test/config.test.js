// The bridge refuses settings that would let anyone in: no token on TCP, a non-loopback address
// without the explicit flag, the guide's example token.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkConfig, configFromEnv, ConfigError, DEFAULTS, isLoopback } from '../src/config.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const TOKEN = 'b1f0c3a9e8d74c2a9f1e0d3c4b5a6978';

test('defaults: 127.0.0.1:3001, session under /var/lib', () => {
  const cfg = configFromEnv({ BRIDGE_TOKEN: TOKEN }, []);
  assert.equal(cfg.host, '127.0.0.1');
  assert.equal(cfg.port, 3001);
  assert.equal(cfg.stateDir, '/var/lib/nanobot-whatsapp-bridge');
  assert.equal(DEFAULTS.authTimeoutMs, 5000);
  assert.deepEqual(checkConfig(cfg).warnings, []);
  assert.equal(configFromEnv({ AUTH_DIR: '/srv/wa' }, []).stateDir, '/srv/wa');
  assert.equal(configFromEnv({ STATE_DIRECTORY: '/var/lib/x' }, []).stateDir, '/var/lib/x');
});

test('a missing token refuses to start unless on a Unix socket', () => {
  assert.throws(() => checkConfig(configFromEnv({}, [])), (e) => e instanceof ConfigError && /BRIDGE_TOKEN is not set/.test(e.message));
  assert.throws(() => checkConfig(configFromEnv({ BRIDGE_TOKEN: '' }, ['--port', '4000'])), /BRIDGE_TOKEN is not set/);
  assert.doesNotThrow(() => checkConfig(configFromEnv({}, ['--socket', '/run/b/bridge.sock'])));
  assert.throws(() => checkConfig(configFromEnv({}, ['--socket', 'rel.sock'])), /absolute path/);
  assert.throws(() => checkConfig(configFromEnv({ BRIDGE_TOKEN: 'your-secret-token-here' }, [])), /example value/);
  assert.match(checkConfig(configFromEnv({ BRIDGE_TOKEN: 'short' }, [])).warnings[0], /only 5 characters/);
});

test('a non-loopback address needs the explicit flag, and warns', () => {
  for (const host of ['0.0.0.0', '192.168.1.10', '::', 'bridge.example']) {
    assert.throws(() => checkConfig(configFromEnv({ BRIDGE_TOKEN: TOKEN }, ['--host', host])), /--allow-non-loopback/, host);
    const { warnings } = checkConfig(configFromEnv({ BRIDGE_TOKEN: TOKEN }, ['--host', host, '--allow-non-loopback']));
    assert.match(warnings[0], /reachable from other hosts/);
  }
  const { warnings } = checkConfig(configFromEnv({ BRIDGE_TOKEN: TOKEN, BRIDGE_HOST: '0.0.0.0', BRIDGE_ALLOW_NON_LOOPBACK: '1' }, []));
  assert.equal(warnings.length, 1);
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(h), h);
  for (const h of ['128.0.0.1', '::', '0.0.0.0', '::ffff:10.0.0.1']) assert.ok(!isLoopback(h), h);
});

test('bad arguments are errors', () => {
  assert.throws(() => configFromEnv({}, ['--port', '70000']), /--port must be/);
  assert.throws(() => configFromEnv({ BRIDGE_PORT: 'x' }, []), /BRIDGE_PORT must be/);
  assert.throws(() => configFromEnv({}, ['--bogus']), /unknown argument/);
  assert.throws(() => configFromEnv({}, ['--host']), /needs a value/);
});

// The real entry point exits 2 with the reason, before touching WhatsApp or the network.
function runMain(env, args = []) {
  return spawnSync(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH, AUTH_DIR: '/nonexistent/never-created', ...env },
    encoding: 'utf8',
    timeout: 20000,
  });
}

test('the bridge refuses to start without a token', () => {
  const r = runMain({});
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /BRIDGE_TOKEN is not set/);
});

test('the bridge refuses a non-loopback bind without the flag', () => {
  const r = runMain({ BRIDGE_TOKEN: TOKEN }, ['--host', '0.0.0.0']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0/);
});
