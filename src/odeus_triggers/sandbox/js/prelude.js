
(function () {
'use strict';
const G = globalThis;
const defineProperty = Object.defineProperty;
const objectKeys = Object.keys;
const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const isArray = Array.isArray;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const promiseResolve = Promise.resolve.bind(Promise);
const promiseReject = Promise.reject.bind(Promise);
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const RangeErrorCtor = RangeError;
const StringCtor = String;
const MapCtor = Map;
const WeakMapCtor = WeakMap;
const dateNow = Date.now;
const apply = Reflect.apply;
const encodeComponent = encodeURIComponent;
const decodeComponent = decodeURIComponent;
const iteratorSymbol = Symbol.iterator;
const arrayJoin = Array.prototype.join;
const mathMax = Math.max;

const MAX_TIMERS = 1000;

// Both arrive with control('init'), before any user code runs, from their one definition on the
// Python side (js_prelude.LOG_TRUNCATED, SandboxLimits), which the parent re-checks against.
let LOG_TRUNCATED;
let cfg;

function defineGlobal(name, value) {
  defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });
}

// What crosses to the driver is built from primitive strings with captured intrinsics only:
// JSON.stringify of an object would consult toJSON, and arr.join or arr[i] = v prototypes, all of
// which the user's code can redefine. Array literals and defineProperty create own elements.
function joined(parts, sep) { return apply(arrayJoin, parts, [sep]); }

function ownPush(list, value) {
  defineProperty(list, list.length, { value, writable: true, enumerable: true, configurable: true });
}

function stringList(list) {
  const parts = [];
  for (let i = 0; i < list.length; i++) ownPush(parts, jsonStringify(safeString(list[i])));
  return joined(['[', joined(parts, ','), ']'], '');
}

function fmtBytes(n) {
  if (n >= 1048576 && n % 1048576 === 0) return (n / 1048576) + ' MiB';
  if (n >= 1024 && n % 1024 === 0) return (n / 1024) + ' KiB';
  return n + ' bytes';
}

// ---------------------------------------------------------------- console
const logs = [];
let logChars = 0;
let logsFull = false;

function safeString(v) {
  try { return StringCtor(v); } catch (e) { return '[unprintable]'; }
}

function logReplacer(key, value) {
  switch (typeof value) {
    case 'bigint': return StringCtor(value) + 'n';
    case 'function': return '[Function' + (value.name ? ': ' + value.name : '') + ']';
    case 'symbol': return value.toString();
    default: return value;
  }
}

function show(v) {
  switch (typeof v) {
    case 'string': return v;
    case 'undefined': return 'undefined';
    case 'function': return '[Function' + (v.name ? ': ' + v.name : ' (anonymous)') + ']';
    case 'bigint': return StringCtor(v) + 'n';
    case 'symbol': return v.toString();
    case 'object': {
      if (v === null) return 'null';
      try {
        if (v instanceof ErrorCtor) return safeString(v.name) + ': ' + safeString(v.message);
        const s = jsonStringify(v, logReplacer);
        return s === undefined ? safeString(v) : s;
      } catch (e) {
        return safeString(v);
      }
    }
    default: return safeString(v);
  }
}

function pushLog(prefix, args) {
  if (logsFull) return;
  let text = prefix;
  for (let i = 0; i < args.length; i++) text += (i ? ' ' : '') + show(args[i]);
  if (logs.length >= cfg.maxLogEntries || logChars + text.length > cfg.maxLogBytes) {
    const room = cfg.maxLogBytes - logChars;
    if (room > 0 && logs.length < cfg.maxLogEntries) ownPush(logs, safeString(text).slice(0, room));
    ownPush(logs, LOG_TRUNCATED);
    logsFull = true;
    return;
  }
  ownPush(logs, text);
  logChars += text.length;
}

const console = {
  log(...args) { pushLog('', args); },
  info(...args) { pushLog('', args); },
  debug(...args) { pushLog('', args); },
  dir(...args) { pushLog('', args); },
  table(...args) { pushLog('', args); },
  trace(...args) { pushLog('', args); },
  warn(...args) { pushLog('[warn] ', args); },
  error(...args) { pushLog('[error] ', args); },
};


// @include web_shims.js


// ------------------------------------------------------------------ fetch
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_METHODS = ['CONNECT', 'TRACE', 'TRACK'];
const NORMALIZED_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'];
const responseBodies = new WeakMapCtor();
let outbox = [];
const inflight = new MapCtor();
let fetchSeq = 0;

function bodyOf(res, consume) {
  const b = responseBodies.get(res);
  if (!b) throw new TypeErrorCtor('Illegal invocation: not a Response object');
  if (consume) {
    if (b.used) throw new TypeErrorCtor('Body has already been consumed');
    b.used = true;
  }
  return b;
}

class Response {
  constructor(r) {
    responseBodies.set(this, { text: StringCtor(r.body), used: false });
    this.status = r.status;
    this.statusText = r.statusText;
    this.ok = r.status >= 200 && r.status <= 299;
    this.headers = new Headers(r.headers);
    this.url = r.url;
    this.redirected = !!r.redirected;
    this.type = 'basic';
  }
  get bodyUsed() { return bodyOf(this, false).used; }
  // Not async on purpose: a JSON.parse error thrown here still has the
  // caller's frame on the stack, so the error can point at the user's line.
  text() {
    try { return promiseResolve(bodyOf(this, true).text); } catch (e) { return promiseReject(e); }
  }
  json() {
    try { return promiseResolve(jsonParse(bodyOf(this, true).text)); } catch (e) { return promiseReject(e); }
  }
  clone() {
    const b = bodyOf(this, false);
    if (b.used) throw new TypeErrorCtor('Body has already been consumed');
    const copy = Object.create(Response.prototype);
    for (const k of objectKeys(this)) copy[k] = this[k];
    copy.headers = new Headers(this.headers);
    responseBodies.set(copy, { text: b.text, used: false });
    return copy;
  }
  get [Symbol.toStringTag]() { return 'Response'; }
}

function fetchError(message, site) {
  const e = new TypeErrorCtor(message);
  // The rejection is created from the driver, so its own stack has no user
  // frame; borrow the stack captured where the user called fetch().
  try { if (site && typeof site.stack === 'string') e.stack = site.stack; } catch (x) { /* keep own */ }
  return e;
}

function buildRequest(input, init) {
  let url;
  let method = 'GET';
  let headers = new Headers();
  let body = null;
  let redirect = 'follow';
  if (urlStates.has(input)) {
    url = serializeUrl(urlState(input));
  } else if (input !== null && typeof input === 'object' && typeof input.url === 'string') {
    url = input.url;
    if (input.method !== undefined) method = StringCtor(input.method);
    if (input.headers !== undefined) headers = new Headers(input.headers);
  } else {
    url = StringCtor(input);
  }
  url = serializeUrl(parseUrl(url, null));
  if (init !== undefined && init !== null) {
    if (typeof init !== 'object') throw new TypeErrorCtor('fetch: the second argument must be an object');
    if (init.method !== undefined) method = StringCtor(init.method);
    if (init.headers !== undefined) headers = new Headers(init.headers);
    if (init.body !== undefined) body = init.body;
    if (init.redirect !== undefined) redirect = StringCtor(init.redirect);
  }
  if (!METHOD.test(method)) throw new TypeErrorCtor('fetch: invalid method ' + jsonStringify(method));
  if (NORMALIZED_METHODS.indexOf(method.toUpperCase()) >= 0) method = method.toUpperCase();
  if (FORBIDDEN_METHODS.indexOf(method.toUpperCase()) >= 0) throw new TypeErrorCtor('fetch: method ' + method + ' is not allowed');
  if (redirect !== 'follow' && redirect !== 'error' && redirect !== 'manual') {
    throw new TypeErrorCtor('fetch: redirect must be "follow", "error" or "manual"');
  }
  if (body !== null) {
    if (method === 'GET' || method === 'HEAD') throw new TypeErrorCtor('fetch: a GET or HEAD request cannot have a body');
    if (paramLists.has(body)) {
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
      body = serializeQuery(paramLists.get(body));
    } else if (typeof body === 'string') {
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    } else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
      throw new TypeErrorCtor('fetch: binary request bodies are not supported; send a string');
    } else {
      body = StringCtor(body);
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    }
    if (body.length > cfg.maxRequestBytes) {
      throw new TypeErrorCtor('fetch: request body is larger than ' + fmtBytes(cfg.maxRequestBytes));
    }
  }
  return { url, method, headers: [...headers.entries()], body, redirect };
}

function wireRequest(id, req) {
  const headers = [];
  for (let i = 0; i < req.headers.length; i++) {
    const pair = req.headers[i];
    ownPush(headers, joined(['[', jsonStringify(safeString(pair[0])), ',', jsonStringify(safeString(pair[1])), ']'], ''));
  }
  return joined([
    '{"id":', StringCtor(id), ',"url":', jsonStringify(safeString(req.url)),
    ',"method":', jsonStringify(safeString(req.method)), ',"headers":[', joined(headers, ','),
    '],"body":', req.body === null ? 'null' : jsonStringify(safeString(req.body)),
    ',"redirect":', jsonStringify(safeString(req.redirect)), '}',
  ], '');
}

function fetch(input, init) {
  const site = new ErrorCtor('fetch');
  return new PromiseCtor((resolve, reject) => {
    const req = buildRequest(input, init);
    if (fetchSeq >= cfg.maxFetches) {
      throw fetchError('fetch refused: more than ' + cfg.maxFetches + ' fetches in one run', site);
    }
    const id = ++fetchSeq;
    ownPush(outbox, wireRequest(id, req));
    inflight.set(id, { resolve, reject, site });
  });
}

// ----------------------------------------------------------------- timers
const timers = new MapCtor();
let timerSeq = 0;

function setTimeout(callback, delay, ...args) {
  if (typeof callback !== 'function') throw new TypeErrorCtor('setTimeout: the callback must be a function');
  if (timerSeq >= MAX_TIMERS) throw new RangeErrorCtor('setTimeout: at most ' + MAX_TIMERS + ' timers per run');
  let ms = +delay;
  if (!(ms > 0)) ms = 0;
  const id = ++timerSeq;
  timers.set(id, { due: dateNow() + ms, callback, args });
  return id;
}

function clearTimeout(id) { timers.delete(id); }

function earliestTimer() {
  let best = null;
  for (const [id, t] of timers) if (best === null || t.due < best.due) best = { id, due: t.due };
  return best;
}

// ----------------------------------------------------------------- result
class ResultError extends ErrorCtor {}
const TYPE_NAMES = { bigint: 'a BigInt', function: 'a function', symbol: 'a Symbol', undefined: 'undefined' };

function resultReplacer(key, value) {
  const t = typeof value;
  if (t === 'bigint' || t === 'function' || t === 'symbol' || (t === 'undefined' && (key === '' || isArray(this)))) {
    const where = key === '' ? 'the returned value' : isArray(this) ? 'item ' + key : 'field ' + jsonStringify(key);
    throw new ResultError('Result is not JSON: ' + where + ' is ' + TYPE_NAMES[t]);
  }
  return value;
}

function serializeResult(v) {
  if (v === undefined) {
    throw new ResultError('Polling code must return an array of events, but it returned undefined (is a return statement missing?)');
  }
  if (isArray(v) && v.length > cfg.maxEvents) {
    throw new ResultError('Result has ' + v.length + ' events; at most ' + cfg.maxEvents + ' are allowed per poll');
  }
  let text;
  try {
    text = jsonStringify(v, resultReplacer);
  } catch (e) {
    if (e instanceof ResultError) throw e;
    throw new ResultError('Result is not JSON-serializable: ' + safeString(e && e.message));
  }
  if (typeof text !== 'string') throw new ResultError('Result must be an array of objects');
  if (text.length > cfg.maxResultBytes) {
    throw new ResultError('Result is larger than ' + fmtBytes(cfg.maxResultBytes) + ' when serialized');
  }
  return text;
}

function errorInfo(e) {
  let message;
  let stack = '';
  try {
    if (e instanceof ErrorCtor) {
      const name = safeString(e.name) || 'Error';
      const msg = safeString(e.message);
      message = msg ? name + ': ' + msg : name;
      if (typeof e.stack === 'string') stack = e.stack.slice(0, 16384);
    } else {
      message = 'Uncaught ' + (typeof e === 'string' ? jsonStringify(e) : show(e));
    }
  } catch (x) {
    message = 'Uncaught exception (it could not be described)';
  }
  return { message: StringCtor(message).slice(0, 4096), stack };
}

// ---------------------------------------------------------------- control
let state = 'idle';
let outcome;
let reason;

function settle(ok, value) {
  if (state !== 'pending') return;
  state = ok ? 'fulfilled' : 'rejected';
  if (ok) outcome = value; else reason = value;
}

defineGlobal('console', console);
defineGlobal('fetch', fetch);
defineGlobal('Headers', Headers);
defineGlobal('URL', URL);
defineGlobal('URLSearchParams', URLSearchParams);
defineGlobal('setTimeout', setTimeout);
defineGlobal('clearTimeout', clearTimeout);

function failureReport(message, stack, kind) {
  return joined([
    '{"ok":false,"error":{"message":', jsonStringify(safeString(message)), ',"stack":', jsonStringify(safeString(stack)),
    ',"kind":', jsonStringify(kind), '},"logs":', stringList(logs), '}',
  ], '');
}

return function control(op, a, b) {
  switch (op) {
    case 'init': {
      const c = jsonParse(a);
      cfg = c.limits;
      LOG_TRUNCATED = c.logTruncated;
      defineGlobal('inputs', c.inputs);
      defineGlobal('secrets', c.secrets);
      defineGlobal('lastPollTime', c.lastPollTime);
      return '';
    }
    case 'start': {
      state = 'pending';
      let p;
      try { p = a(); } catch (e) { settle(false, e); return ''; }
      apply(promiseThen, p, [(v) => settle(true, v), (e) => settle(false, e)]);
      return '';
    }
    case 'step': {
      const fetches = outbox;
      outbox = [];
      const t = earliestTimer();
      return joined([
        '{"done":', state !== 'pending' ? 'true' : 'false',
        ',"timer":', t === null ? 'null' : StringCtor(mathMax(0, t.due - dateNow())),
        ',"fetches":[', joined(fetches, ','), ']}',
      ], '');
    }
    case 'fetched': {
      const entry = inflight.get(a);
      if (!entry) return '';
      inflight.delete(a);
      const r = jsonParse(b);
      if (r.ok) {
        let res;
        try { res = new Response(r.response); } catch (e) { entry.reject(fetchError('fetch failed: ' + safeString(e && e.message), entry.site)); return ''; }
        entry.resolve(res);
      } else {
        entry.reject(fetchError(StringCtor(r.error), entry.site));
      }
      return '';
    }
    case 'fire': {
      const t = earliestTimer();
      if (t === null) return '';
      const timer = timers.get(t.id);
      timers.delete(t.id);
      try { apply(timer.callback, undefined, timer.args); } catch (e) { settle(false, e); }
      return '';
    }
    case 'finish': {
      if (state === 'fulfilled') {
        let text;
        try {
          text = serializeResult(outcome);
        } catch (e) {
          return failureReport(safeString(e && e.message), '', 'result');
        }
        // join, not +: a long concatenation is a rope string, a value type
        // the Python binding cannot convert ("Unknown quickjs tag").
        return joined(['{"ok":true,"logs":', stringList(logs), ',"value":', text, '}'], '');
      }
      const info = errorInfo(reason);
      return failureReport(info.message, info.stack, 'error');
    }
    case 'logs':
      return stringList(logs);
    default:
      return '';
  }
};
})()
