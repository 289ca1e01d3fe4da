// A development OpenID provider (the npm package oidc-provider, run by Node): the quickstart's
// and the tests' identity provider for signing in to the admin pages and the CLI. Its users,
// their passwords and groups, and its clients come as one JSON argument (written by
// extproc/quickstart/dev_oidc.py); its own login form checks the password, and consent is
// taken as given (both clients are the gateway's own), never asked. Never for production: its signing keys
// are made at start and its state is in memory.
//
// It is also an OAuth authorization server for protected resources (the gateway's MCP
// routes, identity.oauth_resource): a client registers itself (RFC 7591, as MCP clients
// do), asks for a token for one resource (RFC 8707), and gets a JWT bound to it (`aud`),
// with the user's groups, which the gateway verifies with the provider's keys.
//
// Optionally (off unless "token_exchange" is given) it exchanges tokens (RFC 8693) for the
// gateway's exchanged upstream credentials: a confidential client trades an agent's JWT
// (verified with "subject_jwks", from "subject_issuer") for a JWT for one resource, with
// the agent's `sub` and an `act` claim naming the client; GET /dev/exchanges counts them.
//
//   "token_exchange": {"client_id", "client_secret", "subject_issuer", "subject_jwks"}
//
//   node dev_oidc.mjs '{"modules": DIR, "issuer": URL, "port": N, "clients": [...],
//                       "users": [{"id", "password", "name", "email", "email_verified",
//                                  "groups"}],
//                       "resources": {URL: [scope, ...]}}'
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";
import crypto from "node:crypto";

const settings = JSON.parse(process.argv[2]);
const { default: Provider, errors } = await import(
  pathToFileURL(path.join(settings.modules, "oidc-provider", "lib", "index.js")).href);
const users = new Map(settings.users.map((user) => [user.id, user]));
const SCOPES = "openid profile email groups";
const resources = new Map(Object.entries(settings.resources || {}));

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const exchange = settings.token_exchange;
const exchangeClients = exchange ? [{
  client_id: exchange.client_id, client_secret: exchange.client_secret,
  token_endpoint_auth_method: "client_secret_basic", redirect_uris: [],
  response_types: [], grant_types: [TOKEN_EXCHANGE, "client_credentials"] }] : [];
let exchanges = 0;

function resourceServer(indicator) {
  const scopes = resources.get(indicator);
  if (!scopes) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  return { scope: scopes.join(" "), audience: indicator, accessTokenFormat: "jwt",
           accessTokenTTL: 600, jwt: { sign: { alg: "RS256" } } };
}

const provider = new Provider(settings.issuer, {
  clients: [...settings.clients, ...exchangeClients],
  // The ID token carries the claims the scopes ask for (groups too), as the gateway reads them.
  conformIdTokenClaims: false,
  claims: { openid: ["sub"], profile: ["name"], email: ["email", "email_verified"],
            groups: ["groups"] },
  // The resources' scopes too: a client registers with the scopes it will ask for.
  scopes: [...SCOPES.split(" "), ...[...resources.values()].flat()],
  cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: resources.size > 0 },
    clientCredentials: { enabled: Boolean(exchange) },
    resourceIndicators: {
      enabled: true,
      // A request that names no resource gets what it got before: an opaque token.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => resourceServer(indicator),
    },
  },
  // A resource's token carries the user's groups, as the gateway's policy reads them.
  // An exchanged token says who acts for its subject (RFC 8693 section 4.1).
  async extraTokenClaims(ctx, token) {
    if (token.gty === "token_exchange") return { act: { sub: token.clientId } };
    const user = token.accountId && users.get(token.accountId);
    return token.aud && user ? { groups: user.groups } : undefined;
  },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: user.name, email: user.email,
                 email_verified: user.email_verified === true, groups: user.groups };
      },
    };
  },
  // The gateway's clients are first-party: what they ask for is granted without asking.
  async loadExistingGrant(ctx) {
    const found = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (found) return ctx.oidc.provider.Grant.find(found);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(SCOPES);
    grant.addOIDCClaims(["name", "email", "email_verified", "groups"]);
    await grant.save();
    return grant;
  },
});

if (exchange) {
  const { createLocalJWKSet, jwtVerify } = await import(
    pathToFileURL(path.join(settings.modules, "jose", "dist", "webapi", "index.js")).href);
  const subjectKeys = createLocalJWKSet(exchange.subject_jwks);
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { params, client } = ctx.oidc;
    if (![JWT_TYPE, ACCESS_TOKEN_TYPE].includes(params.subject_token_type)) {
      throw new errors.InvalidRequest("subject_token_type must be a JWT or an access token");
    }
    if (!params.subject_token) throw new errors.InvalidRequest("subject_token is missing");
    let subject;
    try {
      ({ payload: subject } = await jwtVerify(params.subject_token, subjectKeys,
                                              { issuer: exchange.subject_issuer }));
    } catch (error) {
      throw new errors.InvalidGrant(`subject_token not verified (${error.code || error.name})`);
    }
    const server = resourceServer(params.resource || params.audience);
    const token = new provider.AccessToken({ accountId: subject.sub, client,
                                             gty: "token_exchange", scope: server.scope });
    token.resourceServer = server;
    ctx.oidc.entity("AccessToken", token);
    const value = await token.save();
    exchanges += 1;
    ctx.body = { access_token: value, issued_token_type: ACCESS_TOKEN_TYPE,
                 token_type: "Bearer", expires_in: token.expiration, scope: token.scope };
  }, ["subject_token", "subject_token_type", "requested_token_type", "audience", "resource",
      "scope"]);
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginForm(uid, client, error) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: development identity provider</title>
<style>body { font: 16px system-ui, sans-serif; margin: 1.2rem; max-width: 26rem; }
label { display: block; margin: .8rem 0 .2rem; } input, button { font: inherit; width: 100%;
box-sizing: border-box; padding: .5rem; } button { margin-top: 1rem; }
.error { color: #a40e26; }</style></head>
<body><main><h1>Sign in to ${escape(client)}</h1>
<p>Development identity provider: never for production.</p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label for="login">Username</label><input id="login" name="login" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button></form></main></body></html>`;
}

async function form(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function granted(details) {
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId,
                           clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  return grant.save();
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error("interaction mismatch");
  const client = details.params.client_id;
  if (details.prompt.name === "consent") {
    // A native client (the CLI's loopback) is asked for consent every time (RFC 8252 8.6):
    // given at once, both clients being the gateway's own.
    await provider.interactionFinished(req, res, { consent: { grantId: await granted(details) } },
                                       { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginForm(uid, client, null));
    return;
  }
  if (action !== "login") throw new Error("unknown interaction step");
  const sent = await form(req);
  const user = users.get(sent.get("login"));
  if (!user || user.password !== sent.get("password")) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginForm(uid, client, "Unknown user or wrong password."));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.id } },
                                     { mergeWithLastSubmission: false });
}

const handle = provider.callback();
const server = http.createServer(async (req, res) => {
  if (exchange && req.url === "/dev/exchanges") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ exchanges }));
  }
  const found = /^\/interaction\/([\w-]+)(?:\/(\w+))?$/.exec(req.url.split("?")[0]);
  if (!found) return handle(req, res);
  try {
    await interaction(req, res, found[1], found[2]);
  } catch (error) {
    res.writeHead(400, { "content-type": "text/plain" });
    res.end(`This sign-in cannot go on (${error.message}): start it again.\n`);
  }
});
server.listen(settings.port, "127.0.0.1", () => {
  console.log(`development identity provider at ${settings.issuer}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
