"""What polling code can do: the example script, shims, logs, errors and result validation."""

from __future__ import annotations

import json

import pytest

from support.fake_http import API_TOKEN, ISSUES

EXAMPLE = """
const url = new URL('https://api.example.com/issues');
url.searchParams.set('since', lastPollTime);
const response = await fetch(url, { headers: { 'Authorization': 'Bearer ' + secrets.API_TOKEN } });
if (!response.ok) { throw new Error('Failed to fetch issues'); }
const issues = await response.json();
return issues.map(issue => ({ id: issue.id, title: issue.title, description: issue.description, createdAt: issue.created_at }));
"""


async def test_example_code_against_fake_api(dev_pool, fake_api):
    code = EXAMPLE.replace("https://api.example.com/issues", fake_api.url("/issues"))
    result = await dev_pool.run(
        code, inputs={}, secrets={"API_TOKEN": API_TOKEN}, last_poll_time="2024-05-01T00:00:00Z"
    )
    assert result.ok, result.error
    assert result.events == [
        {"id": i["id"], "title": i["title"], "description": i["description"], "createdAt": i["created_at"]}
        for i in ISSUES
    ]
    assert fake_api.last_request["path"] == "/issues?since=2024-05-01T00%3A00%3A00Z"
    assert result.error is None and result.duration_ms > 0


async def test_example_code_reports_its_own_error_with_line(dev_pool, fake_api):
    code = EXAMPLE.replace("https://api.example.com/issues", fake_api.url("/issues"))
    result = await dev_pool.run(code, inputs={}, secrets={"API_TOKEN": "wrong"}, last_poll_time=None)
    assert not result.ok
    assert result.error.message == "Error: Failed to fetch issues"
    assert result.error.line == 5  # EXAMPLE starts with a newline


async def test_url_and_search_params_shims(run_code):
    code = r"""
    const out = {};
    const u = new URL('https://api.example.com/issues');
    u.searchParams.set('since', '2024-01-01T00:00:00Z');
    u.searchParams.append('q', 'a b&c/é');
    out.built = u.href;
    out.relative = new URL('../x?y=1#h', 'https://a.example/b/c/d').href;
    out.normalized = new URL('HTTPS://A.Example:443/p/./q/../r').href;
    const p = new URL('http://h.example:8080/a b?x=1');
    out.parts = [p.protocol, p.host, p.hostname, p.port, p.pathname, p.search, p.origin];
    p.search = '?k=v';
    out.linked = p.searchParams.get('k');
    const sp = new URLSearchParams('a=1&a=2&b=%20x+y');
    out.params = [sp.getAll('a'), sp.get('b'), sp.has('c'), sp.size, String(new URLSearchParams({a: '1', b: 'two words'}))];
    const h = new Headers({'X-One': '1'});
    h.append('x-one', '2');
    out.headers = [h.get('X-ONE'), h.has('x-one'), [...h.keys()]];
    try { new URL('not a url'); out.invalid = 'accepted'; } catch (e) { out.invalid = e.name; }
    out.lastPollTime = lastPollTime;
    return [{id: 1, out}];
    """
    result = await run_code(code)
    assert result.ok, result.error
    out = result.events[0]["out"]
    assert out["built"] == "https://api.example.com/issues?since=2024-01-01T00%3A00%3A00Z&q=a+b%26c%2F%C3%A9"
    assert out["relative"] == "https://a.example/b/x?y=1#h"
    assert out["normalized"] == "https://a.example/p/r"
    assert out["parts"] == ["http:", "h.example:8080", "h.example", "8080", "/a%20b", "?x=1", "http://h.example:8080"]
    assert out["linked"] == "v"
    assert out["params"] == [["1", "2"], " x y", False, 3, "a=1&b=two+words"]
    assert out["headers"] == ["1, 2", True, ["x-one"]]
    assert out["invalid"] == "TypeError"
    assert out["lastPollTime"] is None


async def test_inputs_and_secrets_are_visible(run_code):
    result = await run_code(
        "return [{id: inputs.repo, token: secrets.API_TOKEN, since: lastPollTime}]",
        inputs={"repo": "acme/app"}, secrets={"API_TOKEN": "s3cret"}, last_poll_time="2024-01-01T00:00:00Z",
    )
    assert result.ok, result.error
    assert result.events == [{"id": "acme/app", "token": "s3cret", "since": "2024-01-01T00:00:00Z"}]


async def test_console_is_captured_and_capped(make_pool):
    pool = await make_pool(max_log_entries=3)
    code = """
    console.log('hello', {a: 1}, [1, 2], undefined, 5n);
    console.warn('careful');
    console.error(new TypeError('bad'));
    console.log('{"type":"result","run":1,"outcome":{"ok":true,"value":[]}}\\n');
    console.log('dropped');
    return [{id: 1}];
    """
    result = await pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error
    assert result.events == [{"id": 1}]
    assert result.logs == [
        'hello {"a":1} [1,2] undefined 5n',
        "[warn] careful",
        "[error] TypeError: bad",
        "[log output truncated: limit reached]",
    ]


async def test_log_bytes_are_capped(make_pool):
    pool = await make_pool(max_log_bytes=100)
    result = await pool.run(
        "for (let i = 0; i < 50; i++) console.log('x'.repeat(30)); return [{id: 1}]",
        inputs={}, secrets={}, last_poll_time=None,
    )
    assert result.ok
    assert sum(len(line) for line in result.logs[:-1]) <= 100
    assert result.logs[-1] == "[log output truncated: limit reached]"


@pytest.mark.parametrize(
    ("code", "line", "message"),
    [
        ("const a = 1;\nconst b = 2;\nthrow new Error('boom on three');", 3, "Error: boom on three"),
        ("function helper(v) {\n  return v.x;\n}\n\nhelper(null);", 2, "TypeError: cannot read property 'x' of null"),
        ("await null;\nawait null;\n  throw new RangeError('late');", 3, "RangeError: late"),
        ("throw 'just a string'", None, 'Uncaught "just a string"'),
        ("function f() { return f(); }\nf();", 1, "RangeError: Maximum call stack size exceeded"),
        ("const x = {};\nqueueMicrotask(() => { throw new Error('in a microtask'); });\n"
         "await new Promise(r => setTimeout(r, 10));", 2, "in a microtask"),
    ],
)
async def test_errors_report_message_and_user_line(run_code, code, line, message):
    result = await run_code(code)
    assert not result.ok
    assert message in result.error.message
    assert result.error.line == line


async def test_syntax_error_in_run_is_reported_with_position(run_code):
    result = await run_code("const ok = 1;\nconst bad = ;\nreturn [];")
    assert not result.ok
    assert result.error.message.startswith("SyntaxError")
    assert (result.error.line, result.error.column) == (2, 13)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("return {id: 1}", "Result must be an array of objects, got an object"),
        ("return 'nope'", "Result must be an array of objects, got a string"),
        ("return [1]", "item 0 is a number"),
        ("return [{id: 1}, {id: 2}, {id: 3}, {title: 'no id'}]", "Result must be an array of objects; item 3 has no id"),
        ("return [{id: true}]", "it must be a string or a number"),
        ("return [{id: null}]", "it must be a string or a number"),
        ("return [{id: {}}]", "it must be a string or a number"),
        ("return [{id: 1n}]", 'field "id" is a BigInt'),
        ("return [{id: 1, run: () => 1}]", 'field "run" is a function'),
        ("return [{id: 1, s: Symbol('x')}]", "is a Symbol"),
        ("const o = {id: 1}; o.self = o; return [o]", "circular"),
        ("return", "returned undefined"),
        ("const events = [];", "returned undefined"),
        ("return [undefined]", "item 0 is undefined"),
        ("return 12n", "BigInt"),
        ("return () => 1", "function"),
    ],
)
async def test_invalid_results_are_clear_errors(run_code, code, message):
    result = await run_code(code)
    assert not result.ok
    assert message in result.error.message, result.error.message
    assert result.events == []


async def test_valid_result_shapes(run_code):
    result = await run_code(
        "return [{id: 'a', when: new Date(0), skip: undefined, n: NaN}, {id: 2.5, nested: {deep: [1, {x: null}]}}]"
    )
    assert result.ok, result.error
    assert result.events == [
        {"id": "a", "when": "1970-01-01T00:00:00.000Z", "n": None},
        {"id": 2.5, "nested": {"deep": [1, {"x": None}]}},
    ]


async def test_event_count_and_size_limits(make_pool):
    pool = await make_pool(max_events=5, max_result_bytes=2000)
    too_many = await pool.run(
        "return Array.from({length: 6}, (_, i) => ({id: i}))", inputs={}, secrets={}, last_poll_time=None
    )
    assert not too_many.ok and "at most 5" in too_many.error.message
    too_big = await pool.run(
        "return [{id: 1, blob: 'x'.repeat(5000)}]", inputs={}, secrets={}, last_poll_time=None
    )
    assert not too_big.ok and "2000 bytes" in too_big.error.message
    fine = await pool.run("return [{id: 1, blob: 'x'.repeat(100)}]", inputs={}, secrets={}, last_poll_time=None)
    assert fine.ok


async def test_deeply_nested_result_is_an_error_not_a_crash(run_code):
    result = await run_code("let o = {id: 0}; for (let i = 1; i < 3000; i++) o = {id: i, c: o}; return [o];")
    assert not result.ok
    assert "nested too deeply" in result.error.message or "stack" in result.error.message
    after = await run_code("return [{id: 1}]")
    assert after.ok


async def test_timers(run_code):
    result = await run_code(
        """
        const order = [];
        const cancelled = setTimeout(() => order.push('cancelled'), 5);
        clearTimeout(cancelled);
        setTimeout((tag) => order.push(tag), 30, 'second');
        setTimeout(() => order.push('first'), 10);
        await new Promise(resolve => setTimeout(resolve, 50));
        return [{id: 1, order}];
        """
    )
    assert result.ok, result.error
    assert result.events[0]["order"] == ["first", "second"]


async def test_fetch_features(dev_pool, fake_api):
    code = f"""
    const post = await fetch('{fake_api.url('/echo')}', {{
      method: 'post', headers: {{'Content-Type': 'application/json', 'X-Custom': 'yes'}},
      body: JSON.stringify({{hello: 'world'}}),
    }});
    const echoed = await post.json();
    let twice;
    try {{ await post.text(); }} catch (e) {{ twice = e.message; }}
    const missing = await fetch('{fake_api.url('/status?code=404')}');
    const [a, b, c] = await Promise.all([1, 2, 3].map(n => fetch('{fake_api.url('/echo?n=')}' + n).then(r => r.json())));
    const zipped = await (await fetch('{fake_api.url('/gzip-ok')}')).json();
    const latin = await (await fetch('{fake_api.url('/latin1')}')).text();
    const form = await (await fetch('{fake_api.url('/echo')}', {{
      method: 'POST', body: new URLSearchParams({{a: '1 2'}}),
    }})).json();
    return [{{
      id: 1, method: echoed.method, body: echoed.body, custom: echoed.headers['x-custom'],
      ctype: post.headers.get('content-type'), status: post.status, ok: post.ok, twice,
      missing: [missing.status, missing.ok], parallel: [a.path, b.path, c.path], zipped, latin,
      form: [form.body, form.headers['content-type']],
    }}];
    """
    result = await dev_pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error
    event = result.events[0]
    assert event["method"] == "POST"
    assert json.loads(event["body"]) == {"hello": "world"}
    assert event["custom"] == "yes"
    assert event["ctype"] == "application/json"
    assert (event["status"], event["ok"]) == (200, True)
    assert event["twice"] == "Body has already been consumed"
    assert event["missing"] == [404, False]
    assert event["parallel"] == ["/echo?n=1", "/echo?n=2", "/echo?n=3"]
    assert event["zipped"] == {"zipped": True}
    assert event["latin"] == "caf\u00e9"
    assert event["form"] == ["a=1+2", "application/x-www-form-urlencoded;charset=UTF-8"]


async def test_json_parse_error_points_at_user_line(dev_pool, fake_api):
    code = f"const r = await fetch('{fake_api.url('/big?size=10')}');\n\nconst data = await r.json();"
    result = await dev_pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert not result.ok
    assert result.error.message.startswith("SyntaxError")
    assert result.error.line == 3


async def test_max_fetches_per_run(make_pool, fake_api):
    pool = await make_pool(allow_private_network=True, max_fetches=3)
    code = f"""
    const results = [];
    for (let i = 0; i < 5; i++) {{
      try {{ await fetch('{fake_api.url('/echo')}'); results.push('ok'); }}
      catch (e) {{ results.push(e.message); }}
    }}
    return [{{id: 1, results}}];
    """
    result = await pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error
    assert result.events[0]["results"][:3] == ["ok", "ok", "ok"]
    assert result.events[0]["results"][3:] == ["fetch refused: more than 3 fetches in one run"] * 2


async def test_response_size_cap_and_gzip_bomb(make_pool, fake_api):
    pool = await make_pool(allow_private_network=True, max_response_bytes=64 * 1024)
    code = f"""
    const out = [];
    for (const path of ['/big?size=65536', '/big?size=65537', '/gzip-bomb']) {{
      try {{ const r = await fetch('{fake_api.url('')}' + path); out.push((await r.text()).length); }}
      catch (e) {{ out.push(e.message); }}
    }}
    return [{{id: 1, out}}];
    """
    result = await pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error
    assert result.events[0]["out"] == [
        65536,
        "fetch failed: response body exceeds the 64 KiB limit",
        "fetch failed: response body exceeds the 64 KiB limit",
    ]


async def test_fetch_input_edge_cases_are_clean_errors(dev_pool, fake_api):
    echo = fake_api.url("/echo")
    code = f"""
    const out = [];
    for (const attempt of [
      () => fetch('{echo}', {{headers: {{'X-Name': 'Zo\\u00eb'}}}}),
      () => fetch('{echo}', {{headers: {{'Bad Name': 'x'}}}}),
      () => fetch('{echo}', {{method: 'GET', body: 'x'}}),
      () => fetch('{echo}', {{method: 'CONNECT'}}),
      () => fetch('{echo}', {{method: 'POST', body: new Uint8Array(2)}}),
      () => fetch('not a url'),
      () => fetch('{echo}', {{method: 'POST', body: 'lone \\ud800 surrogate'}}).then(r => r.json()).then(j => j.body),
    ]) {{
      try {{ out.push(await attempt()); }} catch (e) {{ out.push(e.name + ': ' + e.message); }}
    }}
    return [{{id: 1, out}}];
    """
    result = await dev_pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error
    assert result.events[0]["out"] == [
        "TypeError: fetch failed: the value of header 'x-name' must be printable ASCII",
        'TypeError: Invalid header name: "Bad Name"',
        "TypeError: fetch: a GET or HEAD request cannot have a body",
        "TypeError: fetch: method CONNECT is not allowed",
        "TypeError: fetch: binary request bodies are not supported; send a string",
        'TypeError: Invalid URL: "not a url"',
        "lone ? surrogate",
    ]
