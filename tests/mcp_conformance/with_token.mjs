// Preloaded into the conformance suite's Node process (NODE_OPTIONS=--import): every HTTP
// request it makes carries `Authorization: Bearer $TOLLGATE_TOKEN`, as an agent's MCP
// client does through tollgate (the suite has no option for it). Its requests go out by
// Node's fetch and undici's `request`, which share undici's global dispatcher (an
// interceptor there adds the header where none is given), and by `node:http` (raw, to
// control header case), whose `request` is wrapped.
import http from "node:http";
import { createRequire, syncBuiltinESMExports } from "node:module";

const token = process.env.TOLLGATE_TOKEN;
if (!token) throw new Error("with_token.mjs: TOLLGATE_TOKEN is not set");
// The suite's own undici: the global dispatcher it sets is the one fetch uses too.
const undici = createRequire(process.env.MCP_CONFORMANCE_MAIN)("undici");

function withToken(headers) {
  if (headers == null) return { authorization: `Bearer ${token}` };
  if (Array.isArray(headers)) {
    const named = headers.some((h, i) => i % 2 === 0 && String(h).toLowerCase() === "authorization");
    return named ? headers : [...headers, "authorization", `Bearer ${token}`];
  }
  const named = Object.keys(headers).some((k) => k.toLowerCase() === "authorization");
  return named ? headers : { ...headers, authorization: `Bearer ${token}` };
}

undici.setGlobalDispatcher(new undici.Agent().compose(
  (dispatch) => (options, handler) => dispatch({ ...options, headers: withToken(options.headers) }, handler),
));

const request = http.request;
http.request = (first, ...rest) => {
  // (options[, callback]) or (url[, options][, callback]): the options object gets it.
  if (typeof first === "object" && !(first instanceof URL)) {
    return request({ ...first, headers: withToken(first.headers) }, ...rest);
  }
  const [options, ...after] = typeof rest[0] === "function" ? [{}, ...rest] : rest;
  return request(first, { ...options, headers: withToken(options?.headers) }, ...after);
};
syncBuiltinESMExports();
