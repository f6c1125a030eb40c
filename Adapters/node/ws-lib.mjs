// Finds the `ws` WebSocket library for the relay, the WebSocket transport, their tests and the
// bench, so that each runs with plain `node` from anywhere. The one package kensho-js uses,
// taken from the system: Debian's `node-ws` installs it in /usr/share/nodejs/ws, where node does
// not look by default. Order: node's own resolution from this folder (node_modules, NODE_PATH),
// then the Debian and Node.js system folders. Loaded on first use, never at import, so that the
// adapter runs without it (it then declares no `relay` capability).
import { createRequire } from 'node:module';
import path from 'node:path';

const SYSTEM_FOLDERS = ['/usr/share/nodejs', '/usr/lib/nodejs', '/usr/lib/node_modules', '/usr/local/lib/node_modules'];

let loaded = null;
let failure = null;

/** `{ WebSocket, WebSocketServer }` from `ws`; throws, naming the package to install, when missing. */
export function loadWs() {
  if (loaded) return loaded;
  if (failure) throw failure;
  const require = createRequire(import.meta.url);
  const candidates = ['ws', ...SYSTEM_FOLDERS.map((folder) => path.join(folder, 'ws'))];
  const tried = [];
  for (const candidate of candidates) {
    try {
      const ws = require(candidate);
      if (typeof ws === 'function' && typeof ws.Server === 'function') {
        loaded = { WebSocket: ws, WebSocketServer: ws.WebSocketServer ?? ws.Server };
        return loaded;
      }
      tried.push(`${candidate} (not the ws library)`);
    } catch (e) {
      if (e?.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push(candidate);
    }
  }
  failure = new Error(`the WebSocket library \`ws\` is missing (looked for ${tried.join(', ')}): `
    + 'install Debian\'s package node-ws (apt-get install node-ws), or `npm install ws`');
  failure.code = 'WS_MISSING';
  throw failure;
}

/** Whether `ws` can be loaded. */
export function wsAvailable() {
  try {
    loadWs();
    return true;
  } catch {
    return false;
  }
}
