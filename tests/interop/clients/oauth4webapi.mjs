// oauth4webapi, a strict generic OAuth 2 client, against Steward: RFC 8414
// discovery with the issuer matched exactly, an authorization-code flow with
// PKCE S256 and `resource`, the authorization response validated per RFC 9207
// (`iss` required because the metadata advertises it), the code exchange, the
// access token validated as an RFC 9068 JWT by oauth4webapi's resource-server
// validator, a refresh (rotation), introspection (RFC 7662) by the resource's
// confidential introspection client, and revocation (RFC 7009).
import * as oauth from 'oauth4webapi';
import { startCallback, env } from './callback.mjs';

const issuerId = env('INTEROP_ISSUER');
const resource = env('INTEROP_RESOURCE');
const scope = env('INTEROP_SCOPE');
const client = { client_id: env('INTEROP_CLIENT_ID') };
const introspector = { client_id: env('INTEROP_INTROSPECT_ID') };
const introspectorAuth = oauth.ClientSecretBasic(env('INTEROP_INTROSPECT_SECRET'));
const publicAuth = oauth.None();
// Steward runs on plain-http loopback in this suite.
const insecure = { [oauth.allowInsecureRequests]: true };

function step(name) {
  console.log(`-- ${name}`);
}

// Every token-endpoint answer must forbid caching (OAuth 2.1 §3.2.3, RFC 6749 §5.1).
function requireNoStore(response, what) {
  const cc = response.headers.get('cache-control') ?? '';
  if (!cc.split(',').map((s) => s.trim().toLowerCase()).includes('no-store')) {
    throw new Error(`${what}: Cache-Control is ${JSON.stringify(cc)}, not no-store`);
  }
}

step('discovery (RFC 8414), issuer matched exactly');
const issuer = new URL(issuerId);
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
if (as.issuer !== issuerId) throw new Error(`metadata issuer ${as.issuer} is not byte-for-byte ${issuerId}`);
if (as.authorization_response_iss_parameter_supported !== true) throw new Error('RFC 9207 support not advertised');
if (!as.code_challenge_methods_supported?.includes('S256')) throw new Error('S256 not advertised');
if (as.client_id_metadata_document_supported !== true) throw new Error('CIMD support not advertised');

step('authorization request (PKCE S256, resource, state)');
const callback = await startCallback();
const verifier = oauth.generateRandomCodeVerifier();
const challenge = await oauth.calculatePKCECodeChallenge(verifier);
const state = oauth.generateRandomState();
const authorizationUrl = new URL(as.authorization_endpoint);
for (const [k, v] of Object.entries({
  client_id: client.client_id,
  redirect_uri: callback.redirectUri,
  response_type: 'code',
  scope,
  state,
  code_challenge: challenge,
  code_challenge_method: 'S256',
  resource,
})) {
  authorizationUrl.searchParams.set(k, v);
}
console.log(`open in a browser: ${authorizationUrl.href}`);

step('authorization response (RFC 9207 iss, state)');
const params = oauth.validateAuthResponse(as, client, await callback.wait(), state);

step('code exchange');
const tokenResponse = await oauth.authorizationCodeGrantRequest(as, client, publicAuth, params, callback.redirectUri, verifier, {
  additionalParameters: { resource },
  ...insecure,
});
requireNoStore(tokenResponse, 'token response');
const tokens = await oauth.processAuthorizationCodeResponse(as, client, tokenResponse);
if (tokens.token_type.toLowerCase() !== 'bearer') throw new Error(`token_type ${tokens.token_type}`);
if (!tokens.refresh_token) throw new Error('no refresh token for a client whose metadata allows refresh_token');
console.log(`granted scope=${tokens.scope} expires_in=${tokens.expires_in}`);

step('access token as an RFC 9068 JWT (signature via jwks_uri, iss, aud, exp, typ at+jwt)');
const claims = await oauth.validateJwtAccessToken(
  as,
  new Request(resource, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
  resource,
  insecure,
);
if (claims.client_id !== client.client_id) throw new Error(`client_id claim ${claims.client_id}`);
if (!String(claims.scope).split(' ').includes(scope)) throw new Error(`scope claim ${claims.scope}`);

step('refresh (public client: the refresh token rotates)');
const refreshResponse = await oauth.refreshTokenGrantRequest(as, client, publicAuth, tokens.refresh_token, {
  additionalParameters: { resource },
  ...insecure,
});
requireNoStore(refreshResponse, 'refresh response');
const refreshed = await oauth.processRefreshTokenResponse(as, client, refreshResponse);
if (!refreshed.refresh_token || refreshed.refresh_token === tokens.refresh_token) {
  throw new Error('the refresh token was not rotated');
}

async function introspect(token) {
  const r = await oauth.introspectionRequest(as, introspector, introspectorAuth, token, insecure);
  return oauth.processIntrospectionResponse(as, introspector, r);
}

step('introspection (RFC 7662) by the resource\'s introspection client');
const active = await introspect(refreshed.access_token);
if (active.active !== true) throw new Error(`fresh access token introspected as ${JSON.stringify(active)}`);
if (active.client_id !== client.client_id) throw new Error(`introspection client_id ${active.client_id}`);
const audience = [].concat(active.aud ?? []);
if (!audience.includes(resource)) throw new Error(`introspection aud ${JSON.stringify(active.aud)}`);

step('revocation (RFC 7009) of the refresh token: its grant ends');
const revoke = await oauth.revocationRequest(as, client, publicAuth, refreshed.refresh_token, insecure);
await oauth.processRevocationResponse(revoke);
const after = await introspect(refreshed.access_token);
if (after.active !== false) throw new Error(`access token still active after its grant was revoked: ${JSON.stringify(after)}`);
const reuse = await oauth.refreshTokenGrantRequest(as, client, publicAuth, refreshed.refresh_token, insecure);
try {
  await oauth.processRefreshTokenResponse(as, client, reuse);
  throw new Error('a revoked refresh token was accepted');
} catch (e) {
  if (!(e instanceof oauth.ResponseBodyError) || e.error !== 'invalid_grant') throw e;
}
console.log('oauth4webapi: PASS');
