"""What the OpenAPI document says about polling code: the sandbox, its limits, and its errors.

The limits quoted are the defaults of the settings (`ODEUS_POLLING_*`) and of the engine
(`SandboxLimits`); keep them in step when either changes.
"""

SANDBOX = """
**Polling code** is the body of an `async` JavaScript function, so top-level `await` and
`return` work. It runs in a QuickJS sandbox in a separate process. These globals are all it has
of the outside world; there is no `require`, `process`, module loader, file system or
environment:

| Global | What it is |
|---|---|
| `inputs` | The input field values, by field slug: `inputs.projectId`. |
| `secrets` | The connection's secrets, by name: `secrets.API_TOKEN`. |
| `lastPollTime` | ISO-8601 UTC time of the last successful poll, or `null` on the first. |
| `fetch(url, {method, headers, body, redirect})` | `http:` and `https:` only. The response has `ok`, `status`, `statusText`, `headers`, `url`, `redirected`, `json()` and `text()`. |
| `console.log` / `info` / `warn` / `error` / `debug` | Captured, and returned as `logs` by a test run. |
| `URL`, `URLSearchParams`, `Headers` | The standard classes. |
| `setTimeout(fn, ms)` / `clearTimeout(id)` | Timers, at most 1,000 per run. A timer that would fire after the wall-time limit ends the run with a time-limit error. |
| Standard built-ins | `JSON`, `Date`, `Math`, `Promise`, `Map`, `Set`, `RegExp`, typed arrays, … (no `Intl`). |

The code returns an array of **events**: JSON objects, each with an `id` (string or number)
that is unique within the trigger, because events are de-duplicated by it.

**Limits** (the defaults; an operator may change the first four): wall time 10 s, memory 64 MiB,
20 fetches per run, 5 redirects per fetch, 1 MiB per response body (after decompression),
1,000 events and 1 MiB of events per run, 100 log lines and 64 KiB of logs. `fetch` refuses
loopback, private, link-local and cloud-metadata addresses (such as `127.0.0.1`, `10.0.0.0/8`
and `169.254.169.254`), also when a host name resolves to one, and checks every redirect hop
again.
"""

SAVE_CHECK = """
When the trigger is saved, `pollingCode` is compiled in the sandbox, never run. A syntax error
is a 400 `validation_error` naming the line and column in your code, together with the other
problems of the body:
`{"field": "pollingCode", "message": "syntax error at line 3, column 12: unexpected token in expression: ')'"}`.
Code that closes the function it is wrapped in (`}); … (async function(){`) is a syntax error
too. If the sandbox is unavailable, the answer is 503 `service_unavailable` with `Retry-After`.
"""

RUN_ERRORS = """
**Errors of the code itself** are not HTTP errors: the answer is 200 with `ok: false`, and
`error` says what happened, with the line and column in your code when it is known:

- an exception the code throws or does not catch: `{"message": "Error: Failed to fetch issues", "line": 10, "column": 9}`;
- the wall-time limit: `Polling code exceeded the 10 s time limit`;
- the memory limit: `Polling code exceeded the 64 MiB memory limit`;
- a promise nothing will ever settle: `Polling code never finished: …`;
- a refused or failed fetch, as a `TypeError` the code may catch: `TypeError: fetch refused: 10.0.0.1 is not a public address`;
- a result that is not an array of events: `Result must be an array of objects; item 0 has no id`.

`logs` holds what the code wrote up to the failure. The test run answers 400 when `inputs` do not
match the trigger's input fields (every problem at once: a missing required field, a wrong type,
an unknown slug), and when the trigger has no polling code; 503 with `Retry-After` when the
sandbox is unavailable or all its workers stay busy.
"""
