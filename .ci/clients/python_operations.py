"""Every operation of the OpenAPI document is a function of the generated Python client, and every schema a model.

    python python_operations.py OPENAPI_JSON GENERATED_PACKAGE_DIR

Run with the interpreter that has openapi-python-client: the module and model names are computed
with its own `PythonIdentifier`, as the generator computes them. For each operation it checks that
`api/<tag>/<operationId in snake case>.py` exists, defines sync, sync_detailed, asyncio and
asyncio_detailed, and sends the operation's method to the operation's path.
"""

import json
import re
import sys
from pathlib import Path

from openapi_python_client.strings import PythonIdentifier

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    package = Path(sys.argv[2])
    problems: list[str] = []
    operations = 0
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            operations += 1
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            if not op_id:
                problems.append(f"{where}: no operationId")
                continue
            tag = PythonIdentifier(value=(op.get("tags") or ["default"])[0], prefix="tag")
            module = package / "api" / tag / f"{PythonIdentifier(value=op_id, prefix='')}.py"
            if not module.is_file():
                problems.append(f"{where} ({op_id}): no {module.relative_to(package)}")
                continue
            source = module.read_text()
            for function in ("sync_detailed", "sync", "asyncio_detailed", "asyncio"):
                if not re.search(rf"^(async )?def {function}\(", source, re.M):
                    problems.append(f"{where} ({op_id}): {module.name} has no {function}()")
            url = re.sub(r"\{([^}]+)\}", lambda m: "{" + PythonIdentifier(value=m.group(1), prefix="") + "}", path)
            if f'"method": "{method}"' not in source or f'"url": "{url}"' not in source:
                problems.append(f"{where} ({op_id}): {module.name} does not send {method.upper()} {url}")
            print(f"    {where:<100} -> api/{tag}/{module.name}")
    for name in doc.get("components", {}).get("schemas", {}):
        model = package / "models" / f"{PythonIdentifier(value=name, prefix='')}.py"
        if not model.is_file():
            problems.append(f"schema {name}: no model {model.relative_to(package)}")
    if operations == 0:
        problems.append("the document has no operation")
    for problem in problems:
        print(f"    MISSING {problem}")
    print(f"    {operations} operations, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
