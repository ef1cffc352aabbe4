// ---------------------------------------------------------------- Headers
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const headerMaps = new WeakMapCtor();

function headerName(name) {
  name = StringCtor(name);
  if (!TOKEN.test(name)) throw new TypeErrorCtor('Invalid header name: ' + jsonStringify(name));
  return name.toLowerCase();
}

function headerValue(value) {
  value = StringCtor(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  if (/[\0\r\n]/.test(value)) throw new TypeErrorCtor('Invalid header value');
  return value;
}

function headerMap(h) {
  const m = headerMaps.get(h);
  if (!m) throw new TypeErrorCtor('Illegal invocation: not a Headers object');
  return m;
}

class Headers {
  constructor(init) {
    headerMaps.set(this, new MapCtor());
    if (init === undefined || init === null) return;
    if (typeof init !== 'object' && typeof init !== 'function') {
      throw new TypeErrorCtor('Headers: init must be an object, an array of pairs or a Headers');
    }
    if (headerMaps.has(init)) {
      for (const [k, vs] of headerMaps.get(init)) headerMap(this).set(k, vs.slice());
    } else if (typeof init[iteratorSymbol] === 'function') {
      for (const pair of init) {
        const p = [...pair];
        if (p.length !== 2) throw new TypeErrorCtor('Headers: each pair must have exactly two items');
        this.append(p[0], p[1]);
      }
    } else {
      for (const k of objectKeys(init)) this.append(k, init[k]);
    }
  }
  append(name, value) {
    const m = headerMap(this);
    const k = headerName(name);
    const v = headerValue(value);
    const cur = m.get(k);
    if (cur) cur[cur.length] = v; else m.set(k, [v]);
  }
  set(name, value) { headerMap(this).set(headerName(name), [headerValue(value)]); }
  get(name) {
    const cur = headerMap(this).get(headerName(name));
    return cur ? cur.join(', ') : null;
  }
  has(name) { return headerMap(this).has(headerName(name)); }
  delete(name) { headerMap(this).delete(headerName(name)); }
  getSetCookie() { return (headerMap(this).get('set-cookie') || []).slice(); }
  forEach(cb, thisArg) {
    for (const [k, v] of this.entries()) apply(cb, thisArg, [v, k, this]);
  }
  *entries() {
    const m = headerMap(this);
    const names = [...m.keys()].sort();
    for (const k of names) if (m.has(k)) yield [k, m.get(k).join(', ')];
  }
  *keys() { for (const e of this.entries()) yield e[0]; }
  *values() { for (const e of this.entries()) yield e[1]; }
  [iteratorSymbol]() { return this.entries(); }
  get [Symbol.toStringTag]() { return 'Headers'; }
}

// ------------------------------------------------------- URLSearchParams
const paramLists = new WeakMapCtor();
const paramOwners = new WeakMapCtor();

function formEncode(s) {
  return encodeComponent(s)
    .replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, '+');
}

function utf8Safe(s) {
  // encodeURIComponent throws on lone surrogates; WHATWG replaces them.
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    (m) => m.length === 2 ? m[0] + '\uFFFD' : '\uFFFD');
}

function percentDecode(s) {
  if (s.indexOf('%') < 0) return s;
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try { return decodeComponent(run); } catch (e) {
      return run.replace(/%([0-9A-Fa-f]{2})/g, (m, h) => {
        const b = parseInt(h, 16);
        return b < 0x80 ? StringCtor.fromCharCode(b) : '\uFFFD';
      });
    }
  });
}

function parseQuery(q) {
  const out = [];
  if (q[0] === '?') q = q.slice(1);
  for (const part of q.split('&')) {
    if (!part) continue;
    const i = part.indexOf('=');
    const k = i < 0 ? part : part.slice(0, i);
    const v = i < 0 ? '' : part.slice(i + 1);
    out[out.length] = [percentDecode(k.replace(/\+/g, ' ')), percentDecode(v.replace(/\+/g, ' '))];
  }
  return out;
}

function serializeQuery(list) {
  let s = '';
  for (let i = 0; i < list.length; i++) {
    s += (i ? '&' : '') + formEncode(utf8Safe(list[i][0])) + '=' + formEncode(utf8Safe(list[i][1]));
  }
  return s;
}

function paramList(p) {
  const l = paramLists.get(p);
  if (!l) throw new TypeErrorCtor('Illegal invocation: not a URLSearchParams object');
  return l;
}

function paramsChanged(p) {
  const owner = paramOwners.get(p);
  if (owner) {
    const q = serializeQuery(paramList(p));
    urlState(owner).search = q ? '?' + q : '';
  }
}

class URLSearchParams {
  constructor(init) {
    let list = [];
    if (init === undefined || init === null) {
      // empty
    } else if (typeof init === 'object' || typeof init === 'function') {
      if (paramLists.has(init)) {
        list = paramLists.get(init).map((p) => [p[0], p[1]]);
      } else if (typeof init[iteratorSymbol] === 'function') {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeErrorCtor('URLSearchParams: each pair must have exactly two items');
          list[list.length] = [StringCtor(p[0]), StringCtor(p[1])];
        }
      } else {
        for (const k of objectKeys(init)) list[list.length] = [k, StringCtor(init[k])];
      }
    } else {
      list = parseQuery(StringCtor(init));
    }
    paramLists.set(this, list);
  }
  append(name, value) {
    const l = paramList(this);
    l[l.length] = [StringCtor(name), StringCtor(value)];
    paramsChanged(this);
  }
  delete(name, value) {
    name = StringCtor(name);
    const keep = value === undefined
      ? (p) => p[0] !== name
      : (p) => !(p[0] === name && p[1] === StringCtor(value));
    paramLists.set(this, paramList(this).filter(keep));
    paramsChanged(this);
  }
  get(name) {
    name = StringCtor(name);
    for (const p of paramList(this)) if (p[0] === name) return p[1];
    return null;
  }
  getAll(name) {
    name = StringCtor(name);
    return paramList(this).filter((p) => p[0] === name).map((p) => p[1]);
  }
  has(name, value) {
    name = StringCtor(name);
    return paramList(this).some((p) => p[0] === name && (value === undefined || p[1] === StringCtor(value)));
  }
  set(name, value) {
    name = StringCtor(name);
    value = StringCtor(value);
    const out = [];
    let done = false;
    for (const p of paramList(this)) {
      if (p[0] !== name) out[out.length] = p;
      else if (!done) { out[out.length] = [name, value]; done = true; }
    }
    if (!done) out[out.length] = [name, value];
    paramLists.set(this, out);
    paramsChanged(this);
  }
  sort() {
    const l = paramList(this).map((p, i) => [p, i]);
    l.sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]));
    paramLists.set(this, l.map((x) => x[0]));
    paramsChanged(this);
  }
  forEach(cb, thisArg) {
    for (const p of paramList(this).slice()) apply(cb, thisArg, [p[1], p[0], this]);
  }
  get size() { return paramList(this).length; }
  *entries() { for (const p of paramList(this).slice()) yield [p[0], p[1]]; }
  *keys() { for (const p of paramList(this).slice()) yield p[0]; }
  *values() { for (const p of paramList(this).slice()) yield p[1]; }
  [iteratorSymbol]() { return this.entries(); }
  toString() { return serializeQuery(paramList(this)); }
  get [Symbol.toStringTag]() { return 'URLSearchParams'; }
}

// -------------------------------------------------------------------- URL
// A pragmatic subset of the WHATWG URL parser: enough for building API URLs.
// The parent re-parses every URL it fetches, so leniency here is harmless.
const SPECIAL_PORTS = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443', 'ftp:': '21', 'file:': '' };
const urlStates = new WeakMapCtor();
const FRAGMENT_SET = /[ "<>`]/;
const QUERY_SET = /[ "#<>]/;
const SPECIAL_QUERY_SET = /[ "#<>']/;
const PATH_SET = /[ "#<>?`{}]/;
const USERINFO_SET = /[ "#<>?`{}\/:;=@\[\\\]^|]/;

function isSpecial(protocol) {
  return Object.prototype.hasOwnProperty.call(SPECIAL_PORTS, protocol);
}

function urlState(u) {
  const st = urlStates.get(u);
  if (!st) throw new TypeErrorCtor('Illegal invocation: not a URL object');
  return st;
}

function pctEncode(s, set) {
  let out = '';
  for (const ch of utf8Safe(s)) {
    const c = ch.codePointAt(0);
    out += (c < 0x21 || c > 0x7e || set.test(ch)) ? encodeComponent(ch) : ch;
  }
  return out;
}

function invalidUrl(input) {
  return new TypeErrorCtor('Invalid URL: ' + jsonStringify(StringCtor(input)));
}

function normalizePath(path) {
  const segs = path.split('/');
  const out = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    const lower = s.toLowerCase();
    if (s === '..' || lower === '.%2e' || lower === '%2e.' || lower === '%2e%2e') {
      if (out.length) out.pop();
      if (last) out[out.length] = '';
    } else if (s === '.' || lower === '%2e') {
      if (last) out[out.length] = '';
    } else {
      out[out.length] = s;
    }
  }
  return '/' + out.join('/');
}

function applyTail(st, tail) {
  // tail is "path?query#fragment", each part optional.
  let hash = '';
  let search = '';
  const h = tail.indexOf('#');
  if (h >= 0) { hash = tail.slice(h + 1); tail = tail.slice(0, h); st.hash = '#' + pctEncode(hash, FRAGMENT_SET); }
  else st.hash = '';
  const q = tail.indexOf('?');
  if (q >= 0) { search = tail.slice(q + 1); tail = tail.slice(0, q); }
  st.search = search ? '?' + pctEncode(search, st.special ? SPECIAL_QUERY_SET : QUERY_SET) : '';
  if (st.special) tail = tail.replace(/\\/g, '/');
  if (tail === '' && st.special) tail = '/';
  if (tail !== '' && tail[0] !== '/') tail = '/' + tail;
  st.pathname = tail === '' ? '' : normalizePath(pctEncode(tail, PATH_SET));
  return st;
}

function parseHostPort(st, hostport, input) {
  let host = hostport;
  let port = '';
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']');
    if (end < 0) throw invalidUrl(input);
    host = hostport.slice(0, end + 1);
    const rest = hostport.slice(end + 1);
    if (rest) {
      if (rest[0] !== ':') throw invalidUrl(input);
      port = rest.slice(1);
    }
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host)) throw invalidUrl(input);
    host = host.toLowerCase();
  } else {
    const c = hostport.lastIndexOf(':');
    if (c >= 0) { host = hostport.slice(0, c); port = hostport.slice(c + 1); }
    host = percentDecode(host).toLowerCase();
    if (/[\0\t\n\r #\/:<>?@\[\\\]^|%]/.test(host)) throw invalidUrl(input);
  }
  if (host === '' && st.special && st.protocol !== 'file:') throw invalidUrl(input);
  if (port !== '') {
    if (!/^[0-9]+$/.test(port) || +port > 65535) throw invalidUrl(input);
    port = StringCtor(+port);
    if (SPECIAL_PORTS[st.protocol] === port) port = '';
  }
  st.hostname = host;
  st.port = port;
}

function parseAuthority(protocol, rest, input) {
  const st = { protocol, special: isSpecial(protocol), hasAuthority: true, opaque: false,
    username: '', password: '', hostname: '', port: '', pathname: '', search: '', hash: '' };
  if (st.special) rest = rest.replace(/^[^?#]*/, (m) => m.replace(/\\/g, '/'));
  const end = rest.search(/[\/?#]/);
  const auth = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? '' : rest.slice(end);
  const at = auth.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = auth.slice(0, at);
    const colon = userinfo.indexOf(':');
    st.username = pctEncode(colon < 0 ? userinfo : userinfo.slice(0, colon), USERINFO_SET);
    st.password = colon < 0 ? '' : pctEncode(userinfo.slice(colon + 1), USERINFO_SET);
  }
  parseHostPort(st, at >= 0 ? auth.slice(at + 1) : auth, input);
  return applyTail(st, tail);
}

function copyState(b) {
  return { protocol: b.protocol, special: b.special, hasAuthority: b.hasAuthority, opaque: b.opaque,
    username: b.username, password: b.password, hostname: b.hostname, port: b.port,
    pathname: b.pathname, search: b.search, hash: b.hash };
}

function resolveRelative(input, base) {
  if (base.opaque) throw invalidUrl(input);
  if (base.special) input = input.replace(/^[^?#]*/, (m) => m.replace(/\\/g, '/'));
  if (input.slice(0, 2) === '//') return parseAuthority(base.protocol, input.slice(2), input);
  const st = copyState(base);
  if (input === '') { st.hash = ''; return st; }
  if (input[0] === '#') { st.hash = '#' + pctEncode(input.slice(1), FRAGMENT_SET); return st; }
  if (input[0] === '?') {
    const path = st.pathname;
    applyTail(st, input);
    st.pathname = path;
    return st;
  }
  if (input[0] === '/') return applyTail(st, input);
  const dir = base.pathname.slice(0, base.pathname.lastIndexOf('/') + 1) || '/';
  return applyTail(st, dir + input);
}

function parseUrl(input, base) {
  input = StringCtor(input).replace(/^[\0- ]+|[\0- ]+$/g, '').replace(/[\t\n\r]/g, '');
  const m = /^([A-Za-z][A-Za-z0-9+\-.]*):/.exec(input);
  if (!m) {
    if (!base) throw invalidUrl(input);
    return resolveRelative(input, base);
  }
  const protocol = m[1].toLowerCase() + ':';
  let rest = input.slice(m[0].length);
  if (isSpecial(protocol)) {
    if (base && base.protocol === protocol && !/^[\/\\]/.test(rest)) return resolveRelative(rest, base);
    if (protocol === 'file:') {
      const f = /^[\/\\]{2}([^\/\\?#]*)(.*)$/.exec(rest);
      return parseAuthority(protocol, f ? f[1] + (f[2] || '/') : '/' + rest.replace(/^[\/\\]+/, ''), input);
    }
    return parseAuthority(protocol, rest.replace(/^[\/\\]+/, ''), input);
  }
  if (rest.slice(0, 2) === '//') return parseAuthority(protocol, rest.slice(2), input);
  const st = { protocol, special: false, hasAuthority: false, opaque: rest[0] !== '/',
    username: '', password: '', hostname: '', port: '', pathname: '', search: '', hash: '' };
  applyTail(st, rest);
  if (st.opaque) {
    const cut = rest.search(/[?#]/);
    st.pathname = pctEncode(cut < 0 ? rest : rest.slice(0, cut), /(?!)/);
  }
  return st;
}

function serializeUrl(st) {
  let s = st.protocol;
  if (st.hasAuthority) {
    s += '//';
    if (st.username || st.password) s += st.username + (st.password ? ':' + st.password : '') + '@';
    s += st.hostname + (st.port ? ':' + st.port : '');
  }
  return s + st.pathname + st.search + st.hash;
}

function replaceState(u, st) {
  urlStates.set(u, st);
  const sp = urlSearchParams.get(u);
  if (sp) paramLists.set(sp, parseQuery(st.search));
}

const urlSearchParams = new WeakMapCtor();

class URL {
  constructor(url, base) {
    let b = null;
    if (base !== undefined) b = urlStates.has(base) ? urlState(base) : parseUrl(StringCtor(base), null);
    urlStates.set(this, parseUrl(urlStates.has(url) ? serializeUrl(urlState(url)) : StringCtor(url), b));
  }
  static canParse(url, base) {
    try { new URL(url, base); return true; } catch (e) { return false; }
  }
  static parse(url, base) {
    try { return new URL(url, base); } catch (e) { return null; }
  }
  get href() { return serializeUrl(urlState(this)); }
  set href(v) { replaceState(this, parseUrl(StringCtor(v), null)); }
  get origin() {
    const st = urlState(this);
    if (!st.special || st.protocol === 'file:') return 'null';
    return st.protocol + '//' + st.hostname + (st.port ? ':' + st.port : '');
  }
  get protocol() { return urlState(this).protocol; }
  set protocol(v) {
    const st = urlState(this);
    const p = StringCtor(v).replace(/:.*$/, '').toLowerCase() + ':';
    if (!/^[a-z][a-z0-9+\-.]*:$/.test(p) || isSpecial(p) !== st.special) return;
    st.protocol = p;
    if (SPECIAL_PORTS[p] === st.port) st.port = '';
  }
  get username() { return urlState(this).username; }
  set username(v) { const st = urlState(this); if (st.hasAuthority) st.username = pctEncode(StringCtor(v), USERINFO_SET); }
  get password() { return urlState(this).password; }
  set password(v) { const st = urlState(this); if (st.hasAuthority) st.password = pctEncode(StringCtor(v), USERINFO_SET); }
  get host() { const st = urlState(this); return st.hostname + (st.port ? ':' + st.port : ''); }
  set host(v) {
    const st = urlState(this);
    if (st.opaque) return;
    const t = copyState(st);
    try { parseHostPort(t, StringCtor(v), v); } catch (e) { return; }
    st.hostname = t.hostname; st.port = t.port;
  }
  get hostname() { return urlState(this).hostname; }
  set hostname(v) {
    const st = urlState(this);
    if (st.opaque) return;
    const t = copyState(st);
    try { parseHostPort(t, StringCtor(v).replace(/:.*$/, '') + (st.port ? ':' + st.port : ''), v); } catch (e) { return; }
    st.hostname = t.hostname;
  }
  get port() { return urlState(this).port; }
  set port(v) {
    const st = urlState(this);
    const p = StringCtor(v).match(/^[0-9]*/)[0];
    if (p === '') { if (StringCtor(v) === '') st.port = ''; return; }
    if (+p > 65535) return;
    st.port = SPECIAL_PORTS[st.protocol] === StringCtor(+p) ? '' : StringCtor(+p);
  }
  get pathname() { return urlState(this).pathname; }
  set pathname(v) {
    const st = urlState(this);
    if (st.opaque) return;
    let p = StringCtor(v);
    if (st.special) p = p.replace(/\\/g, '/');
    if (p[0] !== '/') p = '/' + p;
    st.pathname = normalizePath(pctEncode(p, PATH_SET));
  }
  get search() { return urlState(this).search; }
  set search(v) {
    const st = urlState(this);
    let q = StringCtor(v);
    if (q[0] === '?') q = q.slice(1);
    st.search = q ? '?' + pctEncode(q, st.special ? SPECIAL_QUERY_SET : QUERY_SET) : '';
    replaceState(this, st);
  }
  get searchParams() {
    let sp = urlSearchParams.get(this);
    if (!sp) {
      sp = new URLSearchParams(urlState(this).search);
      paramOwners.set(sp, this);
      urlSearchParams.set(this, sp);
    }
    return sp;
  }
  get hash() { const h = urlState(this).hash; return h === '#' ? '' : h; }
  set hash(v) {
    let h = StringCtor(v);
    if (h[0] === '#') h = h.slice(1);
    urlState(this).hash = h ? '#' + pctEncode(h, FRAGMENT_SET) : '';
  }
  toString() { return serializeUrl(urlState(this)); }
  toJSON() { return serializeUrl(urlState(this)); }
  get [Symbol.toStringTag]() { return 'URL'; }
}
