// The official MCP TypeScript SDK as a client of the example MCP server:
// discovery through the server's protected resource metadata (RFC 9728), a
// Client ID Metadata Document as client_id (clientMetadataUrl), `resource`
// (RFC 8707) on the authorization and token requests, then a tool call.
// With INTEROP_REGISTRATION=dcr the provider has no clientMetadataUrl, so the
// SDK registers itself at Steward's registration_endpoint (RFC 7591) first;
// the script then insists the client_id it got is one Steward's DCR issued.
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { startCallback, env, checkAuthorizationResponse } from './callback.mjs';

const mcpUrl = new URL(env('INTEROP_MCP_URL'));
const issuer = env('INTEROP_ISSUER');
const dcr = process.env.INTEROP_REGISTRATION === 'dcr';
const metadataUrl = dcr ? undefined : env('INTEROP_CLIENT_ID');
const callback = await startCallback();

class Provider {
  constructor() {
    if (metadataUrl) this.clientMetadataUrl = metadataUrl;
    this.expectedState = randomBytes(16).toString('base64url');
  }
  get redirectUrl() {
    return callback.redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: 'MCP TypeScript SDK interop client',
      redirect_uris: [callback.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    return this.expectedState;
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info) {
    this.info = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens) {
    this.savedTokens = tokens;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
    // The harness is the browser: it opens what we print.
    console.log(`open in a browser: ${url.href}`);
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const provider = new Provider();
const client = new Client({ name: 'steward-interop-node', version: '1.0.0' });
try {
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
  throw new Error('the MCP server accepted a connection without a token');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
const a = provider.authorizationUrl;
if (!a) throw new Error('the SDK never asked for a browser');
let clientId = metadataUrl;
if (dcr) {
  // Steward's registration endpoint issues client ids with this prefix; a
  // metadata-document or pre-registered id would mean DCR never happened.
  clientId = provider.info?.client_id;
  if (!clientId?.startsWith('dcr_')) throw new Error(`not a DCR client id: ${JSON.stringify(provider.info)}`);
  if (provider.info.client_secret) throw new Error('open DCR issued a secret to a public client');
  if (provider.info.token_endpoint_auth_method !== 'none') {
    throw new Error(`registered token_endpoint_auth_method: ${provider.info.token_endpoint_auth_method}`);
  }
  console.log(`registered by DCR: client_id=${clientId}`);
}
if (a.origin !== new URL(issuer).origin) throw new Error(`authorization URL is not Steward's: ${a}`);
if (a.searchParams.get('client_id') !== clientId) throw new Error(`client_id sent: ${a.searchParams.get('client_id')}`);
if (a.searchParams.get('resource') !== mcpUrl.href) throw new Error(`resource sent: ${a.searchParams.get('resource')}`);
if (a.searchParams.get('code_challenge_method') !== 'S256') throw new Error('no PKCE S256');

const response = await callback.wait();
const code = checkAuthorizationResponse(response, { issuer, state: provider.expectedState });
const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
await transport.finishAuth(code);
const tokens = provider.tokens();
if (!tokens?.access_token) throw new Error('no access token saved');
console.log(`token: type=${tokens.token_type} scope=${tokens.scope} expires_in=${tokens.expires_in} refresh=${Boolean(tokens.refresh_token)}`);

const authed = new Client({ name: 'steward-interop-node', version: '1.0.0' });
await authed.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
const tools = await authed.listTools();
console.log(`tools: ${tools.tools.map((t) => t.name).join(', ')}`);
const text = `hello from the TypeScript SDK ${randomBytes(4).toString('hex')}`;
const result = await authed.callTool({ name: 'echo', arguments: { text } });
const got = result.content?.find((c) => c.type === 'text')?.text;
if (got !== text) throw new Error(`echo returned ${JSON.stringify(result)}`);
console.log(`echo ok: ${got}`);
await authed.close();
console.log(`node-sdk${dcr ? '-dcr' : ''}: PASS`);
