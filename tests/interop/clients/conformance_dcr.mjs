// The MCP conformance suite's `authorization` scenarios with a client that
// Dynamic Client Registration (RFC 7591) made. The suite's CLI takes a
// client id (`--client-id`) and registers nothing itself, so this script does
// what a developer setting it up would: reads Steward's metadata (RFC 8414),
// registers a public client at its registration_endpoint with the redirect
// URI the suite will use (http://127.0.0.1:<port>/callback), checks the
// registration response, and runs the suite with the client id it got. The
// suite's output goes straight to the harness, which acts as the browser for
// the authorization URL it prints; this script exits with the suite's status.
import { spawn } from 'node:child_process';
import { env } from './callback.mjs';

const issuer = env('INTEROP_ISSUER');
const resource = env('INTEROP_RESOURCE');
const port = env('INTEROP_CALLBACK_PORT');
const suite = env('INTEROP_CONFORMANCE_JS');
const outputDir = env('INTEROP_OUTPUT_DIR');

const metadataResponse = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
if (!metadataResponse.ok) throw new Error(`metadata: HTTP ${metadataResponse.status}`);
const metadata = await metadataResponse.json();
const endpoint = metadata.registration_endpoint;
if (typeof endpoint !== 'string') throw new Error('Steward advertises no registration_endpoint');
if (new URL(endpoint).origin !== new URL(issuer).origin) throw new Error(`registration_endpoint elsewhere: ${endpoint}`);

const redirectUri = `http://127.0.0.1:${port}/callback`;
const request = {
  client_name: 'MCP conformance suite (DCR)',
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};
const registration = await fetch(endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: JSON.stringify(request),
});
const body = await registration.text();
if (registration.status !== 201) throw new Error(`registration: HTTP ${registration.status}: ${body}`);
const client = JSON.parse(body);
// RFC 7591 §3.2.1: the response echoes the registered metadata.
if (!client.client_id?.startsWith('dcr_')) throw new Error(`not a DCR client id: ${body}`);
if (client.client_secret) throw new Error('open DCR issued a secret to a public client');
if (client.token_endpoint_auth_method !== 'none') throw new Error(`token_endpoint_auth_method: ${client.token_endpoint_auth_method}`);
if (JSON.stringify(client.redirect_uris) !== JSON.stringify([redirectUri])) {
  throw new Error(`redirect_uris registered: ${JSON.stringify(client.redirect_uris)}`);
}
console.log(`registered by DCR: client_id=${client.client_id}`);

const child = spawn(
  process.execPath,
  [
    suite,
    'authorization',
    '--url',
    issuer,
    '--client-id',
    client.client_id,
    '--resource',
    resource,
    '--port',
    port,
    '--output-dir',
    outputDir,
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
const code = await new Promise((resolve, reject) => {
  child.on('error', reject);
  child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
});
console.log(`conformance-dcr: suite exited ${code}`);
process.exit(code);
