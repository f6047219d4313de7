#!/usr/bin/env node
// nanobot-whatsapp-bridge: check the settings (refusing unsafe ones), listen, then link WhatsApp.

import fs from 'node:fs';
import { checkConfig, configFromEnv, ConfigError } from './config.js';
import { BridgeServer } from './server.js';

async function main() {
  let checked;
  try {
    checked = checkConfig(configFromEnv());
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`nanobot-whatsapp-bridge: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
  const { cfg, warnings } = checked;
  for (const w of warnings) console.warn(`nanobot-whatsapp-bridge: warning: ${w}`);
  fs.mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
  // Loaded only now, so a refused configuration is reported even where Baileys cannot load.
  const { WhatsApp } = await import('./whatsapp.js');
  const whatsapp = new WhatsApp(cfg.stateDir);
  const server = new BridgeServer(cfg, whatsapp);
  const where = await server.start();
  console.log(
    `nanobot-whatsapp-bridge: listening on ${cfg.socketPath ? `unix:${where}` : `ws://${cfg.host}:${where}`}` +
      `${cfg.token ? ' (token required)' : ' (no token: Unix socket permissions only)'}, session in ${cfg.stateDir}`,
  );
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await whatsapp.start();
}

main().catch((e) => {
  console.error(`nanobot-whatsapp-bridge: ${e?.stack ?? e}`);
  process.exit(1);
});
