// Test OpenID Provider for jitgate's integration tests (oidc-provider v9).
//
// Configured entirely from the IDP_CONFIG environment variable (JSON), see README.md.
// Prints exactly one line "IDP_READY <issuer>" on stdout once it accepts connections.
// NOT for production use: it disables oidc-provider's SSRF guard for back-channel logout
// so that logout tokens can be delivered to listeners on 127.0.0.1.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

function fail(message) {
  process.stderr.write(`test-idp: ${message}\n`);
  process.exit(2);
}

function loadConfig() {
  const raw = process.env.IDP_CONFIG;
  if (!raw) fail('IDP_CONFIG is not set');
  let cfg;
  try {
    cfg = JSON.parse(raw);
  } catch (err) {
    fail(`IDP_CONFIG is not valid JSON: ${err.message}`);
  }
  if (!cfg || typeof cfg !== 'object') fail('IDP_CONFIG must be a JSON object');
  if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) fail('IDP_CONFIG.clients must be a non-empty array');
  if (!Array.isArray(cfg.users)) fail('IDP_CONFIG.users must be an array');
  for (const u of cfg.users) {
    if (!u || typeof u.sub !== 'string' || typeof u.login !== 'string' || typeof u.password !== 'string') {
      fail('every user needs string "sub", "login" and "password"');
    }
  }
  return cfg;
}

const cfg = loadConfig();

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body>
</html>
`;
}

function loginPage(uid, { error, login } = {}) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return page('Sign in', `<h1>Sign in</h1>
${error ? `<p class="error">${escapeHtml(error)}</p>\n` : ''}<form method="post" action="${action}">
<input type="text" name="login" value="${escapeHtml(login ?? '')}" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit" name="submit" value="login">Sign in</button>
</form>`);
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// ---- accounts ----------------------------------------------------------------------------

const usersBySub = new Map(cfg.users.map((u) => [u.sub, u]));
const usersByLogin = new Map(cfg.users.map((u) => [u.login, u]));

function passwordMatches(expected, given) {
  const a = crypto.createHash('sha256').update(String(expected)).digest();
  const b = crypto.createHash('sha256').update(String(given)).digest();
  return crypto.timingSafeEqual(a, b);
}

async function findAccount(ctx, sub) {
  const user = usersBySub.get(sub);
  if (!user) return undefined;
  return {
    accountId: sub,
    // The provider filters these by the granted scopes/claims.
    async claims() {
      const claims = { sub };
      if (user.email !== undefined) {
        claims.email = user.email;
        claims.email_verified = user.email_verified ?? true;
      }
      if (user.preferred_username !== undefined) claims.preferred_username = user.preferred_username;
      if (user.name !== undefined) claims.name = user.name;
      if (user.groups !== undefined) claims.groups = user.groups;
      return claims;
    },
  };
}

// ---- clients -----------------------------------------------------------------------------

const clients = cfg.clients.map((c) => ({
  application_type: 'web',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
  ...c,
}));

// ---- logout pages ------------------------------------------------------------------------

async function logoutSource(ctx) {
  // Same action and xsrf value the provider puts in its default form, but with the buttons
  // inside the form so that a test can parse one <form> and submit its fields.
  const action = ctx.oidc.urlFor('end_session_confirm');
  const { secret } = ctx.oidc.session.state;
  ctx.type = 'html';
  ctx.body = page('Sign out', `<h1>Do you want to sign out?</h1>
<form id="op.logoutForm" method="post" action="${escapeHtml(action)}">
<input type="hidden" name="xsrf" value="${escapeHtml(secret)}">
<button type="submit" name="logout" value="yes">Yes, sign me out</button>
</form>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out', '<h1>signed out</h1>\n<p>You have been signed out.</p>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  const rows = Object.entries(out)
    .map(([k, v]) => `<p><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</p>`)
    .join('\n');
  ctx.body = page('error', `<h1>error</h1>\n${rows}`);
}

// ---- provider ----------------------------------------------------------------------------

function signingJwks() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, use: 'sig', alg: 'RS256', kid: crypto.randomBytes(8).toString('hex') }] };
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients,
    findAccount,
    jwks: signingJwks(),
    cookies: {
      keys: cfg.cookie_keys ?? [crypto.randomBytes(32).toString('hex')],
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    pkce: { required: () => true },
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // Like Keycloak: every code exchange brings a refresh token (no offline_access needed),
    // which lives as long as the IdP's session.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    renderError,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      RefreshToken: 3600,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      ...(cfg.ttl ?? {}),
    },
    // Test IdP only: drop the SSRF-guarding dispatcher so that back-channel logout tokens
    // can be delivered to listeners on 127.0.0.1.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
  });
  provider.proxy = false;

  if (process.env.IDP_DEBUG) {
    for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
      'backchannel.error', 'userinfo.error', 'backchannel.success']) {
      provider.on(event, (...args) => {
        const err = args.find((a) => a instanceof Error);
        process.stderr.write(`test-idp event ${event}: ${err ? `${err.message} ${err.error_description ?? ''}` : ''}\n`);
      });
    }
  }
  return provider;
}

// ---- interactions ------------------------------------------------------------------------

async function finishConsent(provider, req, res, details) {
  const { prompt: { details: missing = {} }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });

  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function handleInteraction(provider, req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('error', `<h1>error</h1>\n<p>interaction not found: ${escapeHtml(err.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('error', '<h1>error</h1>\n<p>interaction mismatch</p>'));
    return;
  }
  const promptName = details.prompt.name;

  if (action === undefined && req.method === 'GET') {
    if (promptName === 'consent') {
      await finishConsent(provider, req, res, details);
    } else if (promptName === 'login') {
      send(res, 200, loginPage(uid));
    } else {
      send(res, 400, page('error', `<h1>error</h1>\n<p>unsupported prompt ${escapeHtml(promptName)}</p>`));
    }
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    if (promptName !== 'login') {
      send(res, 400, page('error', '<h1>error</h1>\n<p>login is not the pending prompt</p>'));
      return;
    }
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const user = usersByLogin.get(login);
    if (!user || !passwordMatches(user.password, form.get('password') ?? '')) {
      send(res, 200, loginPage(uid, { error: 'invalid login', login }));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    return;
  }

  send(res, 405, 'method not allowed', 'text/plain; charset=utf-8');
}

// ---- server ------------------------------------------------------------------------------

let provider;
let providerCallback;
// Test-only: how long the token endpoint waits before it answers (POST /test/token-delay).
let tokenDelayMs = 0;

const server = http.createServer(async (req, res) => {
  try {
    const { pathname } = new URL(req.url, 'http://localhost');

    if (!providerCallback) {
      send(res, 503, 'starting', 'text/plain; charset=utf-8');
      return;
    }

    if (pathname === '/test/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, 'ok', 'text/plain; charset=utf-8');
      return;
    }

    // Test-only directory change: a user's groups, as an IdP admin would edit them
    // (form fields login, groups=comma,separated). Takes effect at the user's next login or
    // token refresh.
    if (pathname === '/test/groups' && req.method === 'POST') {
      const form = await readForm(req);
      const user = usersByLogin.get(form.get('login') ?? '');
      if (!user) {
        send(res, 404, 'no such user', 'text/plain; charset=utf-8');
        return;
      }
      user.groups = (form.get('groups') ?? '').split(',').filter((g) => g !== '');
      send(res, 200, 'ok', 'text/plain; charset=utf-8');
      return;
    }

    // Test-only removal: the user is deleted at the IdP, as an admin would (form field login).
    // Their next refresh is refused with invalid_grant, and they can no longer sign in.
    if (pathname === '/test/remove' && req.method === 'POST') {
      const form = await readForm(req);
      const user = usersByLogin.get(form.get('login') ?? '');
      if (!user) {
        send(res, 404, 'no such user', 'text/plain; charset=utf-8');
        return;
      }
      usersByLogin.delete(user.login);
      usersBySub.delete(user.sub);
      send(res, 200, 'ok', 'text/plain; charset=utf-8');
      return;
    }

    // Test-only slowness: the token endpoint waits this long (form field ms) before it
    // answers, as an overloaded IdP would.
    if (pathname === '/test/token-delay' && req.method === 'POST') {
      const form = await readForm(req);
      tokenDelayMs = Number(form.get('ms') ?? 0);
      send(res, 200, 'ok', 'text/plain; charset=utf-8');
      return;
    }
    if (pathname === '/token' && tokenDelayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, tokenDelayMs));
    }

    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(pathname);
    if (m) {
      await handleInteraction(provider, req, res, m[1], m[2]);
      return;
    }

    providerCallback(req, res);
  } catch (err) {
    process.stderr.write(`test-idp: ${err.stack ?? err}\n`);
    if (!res.headersSent) send(res, 500, 'internal error', 'text/plain; charset=utf-8');
    else res.destroy();
  }
});

const host = cfg.host ?? '127.0.0.1';
const port = Number(cfg.port ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('IDP_CONFIG.port must be an integer port or 0');

server.on('error', (err) => fail(`listen failed: ${err.message}`));
server.listen(port, host, async () => {
  const bound = server.address().port;
  let issuer;
  if (cfg.issuer) {
    const u = new URL(cfg.issuer);
    if (port === 0) u.port = String(bound); // port 0: the issuer takes the bound port
    issuer = u.href.replace(/\/$/, '');
  } else {
    issuer = `http://127.0.0.1:${bound}`;
  }
  try {
    provider = buildProvider(issuer);
    // Static clients are otherwise only validated on first use: fail fast on bad metadata.
    for (const c of clients) await provider.Client.find(c.client_id);
  } catch (err) {
    fail(`bad provider configuration: ${err.error_description ?? ''} ${err.stack ?? err}`);
  }
  providerCallback = provider.callback();
  process.stdout.write(`IDP_READY ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
