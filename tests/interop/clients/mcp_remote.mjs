// mcp-remote (npm), the stdio-to-HTTP proxy local MCP hosts use to reach a
// remote server, as a desktop host would run it: spawned with the example MCP
// server's URL and a callback port, it discovers Steward through the server's
// protected resource metadata, registers itself by Dynamic Client Registration
// (RFC 7591), prints the authorization URL and waits on its loopback callback.
// The harness is the browser and acts on that URL (mcp-remote's stderr goes
// straight to it); mcp-remote's own attempt to open a browser is made a no-op
// (BROWSER=true, no display). This script is the MCP host: over the proxy's
// stdio it sends initialize, notifications/initialized, tools/list and
// tools/call echo, checks the echo, and then checks the client mcp-remote
// stored is one Steward's DCR issued (`dcr_` prefix) and that it holds tokens.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { env } from './callback.mjs';

const mcpUrl = env('INTEROP_MCP_URL');
const proxyJs = env('INTEROP_MCP_REMOTE_JS');
const stateDir = env('INTEROP_STATE_DIR');

// A free loopback port for mcp-remote's callback listener.
const port = await new Promise((resolve, reject) => {
  const s = net.createServer();
  s.on('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});

const childEnv = { ...process.env, MCP_REMOTE_CONFIG_DIR: stateDir, BROWSER: 'true' };
for (const name of ['DISPLAY', 'WAYLAND_DISPLAY', 'XDG_CURRENT_DESKTOP', 'DESKTOP_SESSION', 'KDE_FULL_SESSION', 'GNOME_DESKTOP_SESSION_ID', 'DBUS_SESSION_BUS_ADDRESS']) {
  delete childEnv[name];
}
const proxy = spawn(process.execPath, [proxyJs, mcpUrl, String(port), '--auth-timeout', '100'], {
  env: childEnv,
  stdio: ['pipe', 'pipe', 'inherit'],
});
let exited = null;
const exit = new Promise((resolve) => {
  proxy.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  });
});
proxy.on('error', (e) => {
  console.error(`mcp-remote did not start: ${e.message}`);
  process.exit(1);
});

// MCP stdio transport: one JSON-RPC message per line.
const pending = new Map();
readline.createInterface({ input: proxy.stdout }).on('line', (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    console.log(`[mcp-remote stdout, not JSON] ${line}`);
    return;
  }
  if (msg.id !== undefined && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  } else {
    console.log(`[mcp-remote] ${line}`);
  }
});
let nextId = 1;
function send(message) {
  proxy.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
}
async function request(method, params, ms = 110_000) {
  const id = nextId++;
  const reply = new Promise((resolve) => pending.set(id, resolve));
  send({ id, method, params });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer to ${method} within ${ms / 1000}s`)), ms);
  });
  const gone = exit.then((e) => {
    throw new Error(`mcp-remote exited (${JSON.stringify(e)}) before answering ${method}`);
  });
  try {
    const msg = await Promise.race([reply, timeout, gone]);
    if (msg.error) throw new Error(`${method}: JSON-RPC error ${JSON.stringify(msg.error)}`);
    return msg.result;
  } finally {
    clearTimeout(timer);
  }
}

let failed = null;
try {
  // The first request waits for the whole sign-in: mcp-remote connects (and
  // authorizes) before it answers its stdio side.
  const init = await request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'steward-interop-mcp-remote-host', version: '1.0.0' },
  });
  console.log(`initialize: server ${init.serverInfo?.name} ${init.serverInfo?.version}, protocol ${init.protocolVersion}`);
  send({ method: 'notifications/initialized' });
  const tools = await request('tools/list', {}, 30_000);
  console.log(`tools: ${tools.tools.map((t) => t.name).join(', ')}`);
  if (!tools.tools.some((t) => t.name === 'echo')) throw new Error('no echo tool listed');
  const text = `hello through mcp-remote ${randomBytes(4).toString('hex')}`;
  const result = await request('tools/call', { name: 'echo', arguments: { text } }, 30_000);
  const got = result.content?.find((c) => c.type === 'text')?.text;
  if (result.isError || got !== text) throw new Error(`echo returned ${JSON.stringify(result)}`);
  console.log(`echo ok: ${got}`);

  // What mcp-remote stored: the DCR client and the tokens it got.
  const dir = path.join(stateDir, (await readdir(stateDir)).find((d) => d.startsWith('mcp-remote-')) ?? '');
  const files = await readdir(dir);
  const infoFile = files.find((f) => f.endsWith('_client_info.json'));
  if (!infoFile) throw new Error(`mcp-remote stored no client_info.json in ${dir}: ${files.join(', ')}`);
  const info = JSON.parse(await readFile(path.join(dir, infoFile), 'utf8'));
  if (!info.client_id?.startsWith('dcr_')) throw new Error(`not a DCR client id: ${JSON.stringify(info.client_id)}`);
  if (info.client_secret) throw new Error('open DCR issued a secret to a public client');
  console.log(`registered by DCR: client_id=${info.client_id} redirect_uris=${JSON.stringify(info.redirect_uris)}`);
  const tokensFile = files.find((f) => f.endsWith('_tokens.json'));
  const tokens = tokensFile ? JSON.parse(await readFile(path.join(dir, tokensFile), 'utf8')) : null;
  if (!tokens?.access_token) throw new Error(`mcp-remote stored no access token: ${files.join(', ')}`);
  console.log(`token: type=${tokens.token_type} scope=${tokens.scope} refresh=${Boolean(tokens.refresh_token)}`);
} catch (e) {
  failed = e;
}

// Closing stdin is how a host ends mcp-remote; give it a moment, then stop it.
proxy.stdin.end();
const stopped = await Promise.race([exit, new Promise((r) => setTimeout(() => r(null), 5_000))]);
if (!stopped && exited === null) {
  proxy.kill('SIGTERM');
  await exit;
}
if (failed) {
  console.error(`FAIL: ${failed.message}`);
  process.exit(1);
}
console.log('mcp-remote-dcr: PASS');
process.exit(0);
