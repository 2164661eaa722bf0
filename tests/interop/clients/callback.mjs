// A loopback redirect_uri listener, as a native MCP client runs one: bound to
// an ephemeral port on 127.0.0.1, it resolves with the authorization response
// the browser lands on. The hosted metadata document registers the port-less
// http://127.0.0.1/callback; Steward must accept any port for loopback.
import http from 'node:http';

export async function startCallback() {
  let deliver;
  const received = new Promise((resolve) => {
    deliver = resolve;
  });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${server.address().port}`);
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Authorization received; you can close this page.');
    deliver(url);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const redirectUri = `http://127.0.0.1:${server.address().port}/callback`;
  return {
    redirectUri,
    async wait(ms = 60_000) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no authorization response within 60s')), ms);
      });
      try {
        return await Promise.race([received, timeout]);
      } finally {
        clearTimeout(timer);
        server.close();
      }
    },
  };
}

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through tests/interop/run.sh)`);
  return v;
}

// An application's own check of the authorization response, for SDKs that do
// not do it themselves: RFC 9207 `iss` (the metadata says it is always sent)
// and `state`, each exactly once.
export function checkAuthorizationResponse(url, { issuer, state }) {
  const p = url.searchParams;
  for (const name of ['code', 'state', 'iss']) {
    if (p.getAll(name).length > 1) throw new Error(`authorization response repeats ${name}`);
  }
  if (p.has('error')) throw new Error(`authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
  if (p.get('iss') !== issuer) throw new Error(`RFC 9207: iss ${JSON.stringify(p.get('iss'))} is not the issuer ${issuer}`);
  if (state !== undefined && p.get('state') !== state) throw new Error('state mismatch');
  const code = p.get('code');
  if (!code) throw new Error('no code in the authorization response');
  return code;
}
