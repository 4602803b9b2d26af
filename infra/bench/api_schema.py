"""A schemathesis run over the whole OpenAPI schema of a running API.

Every operation gets generated requests (valid and invalid parameters and bodies, with the
credentials it documents, so the run reaches the code behind authentication); each
response is checked for a server error (5xx) and for a status code the schema does not
document. Streaming operations (SSE) are left out: a generated request would hold the
connection open until the time budget ran out; their limits have their own tests.

Used by the test suite (small budget) and ``tourpulse bench security`` (larger one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
import schemathesis.specs.openapi.schemas  # eager: see below
import schemathesis.transport.asgi  # eager too: the first case.call imports them
import schemathesis.transport.requests
import schemathesis.transport.wsgi
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok

# The OpenAPI loader's and the transports' modules are imported when this module is, not
# lazily by the first ``from_dict`` / ``case.call``: those imports ran inside a test's
# worker thread, where CPython 3.11's parser failed them with "AST constructor recursion
# depth mismatch" (python/cpython#106905; pytest rewrites schemathesis' modules, a pytest
# plugin, as it imports them, so each import parses). The loader's import failed so on
# 3.11.2, the transports' in a CI run on 3.11.7 (2026-12-07).

#: Operations answered with ``text/event-stream``.
STREAMING = frozenset({"/api/v1/live", "/api/v1/ioc/live"})


@dataclass
class SchemaRun:
    operations: int = 0
    cases: int = 0
    server_errors: list[str] = field(default_factory=list)
    undocumented: dict[str, set[int]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)


def run_schema(
    base_url: str,
    raw_schema: Mapping[str, Any],
    headers_for: Mapping[str, Mapping[str, str]],
    examples_per_operation: int,
    budget_s: float,
) -> SchemaRun:
    """Fuzz every operation of ``raw_schema`` against ``base_url`` within ``budget_s``.

    ``headers_for`` maps a path prefix to headers (e.g. a bearer token) sent with every
    request under it; the longest matching prefix wins.
    """
    schema = schemathesis.openapi.from_dict(dict(raw_schema))
    result = SchemaRun()
    deadline = time.monotonic() + budget_s
    session = requests.Session()
    operations = []
    for loaded in schema.get_all_operations():
        if isinstance(loaded, Ok):
            operations.append(loaded.ok())
        else:
            result.server_errors.append(f"schema does not load: {loaded.err()}")
    per_op_budget = budget_s / max(1, len(operations))
    for operation in operations:
        if operation.path in STREAMING or time.monotonic() > deadline:
            continue
        result.operations += 1
        _fuzz_operation(
            operation,
            base_url,
            session,
            _headers(operation.path, headers_for),
            examples_per_operation,
            time.monotonic() + per_op_budget,
            result,
        )
    return result


def _fuzz_operation(
    operation: Any,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    examples: int,
    op_deadline: float,
    result: SchemaRun,
) -> None:
    documented = {str(code) for code in operation.definition.raw.get("responses", {})}
    key = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        if time.monotonic() > op_deadline:
            return
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=10)
        result.cases += 1
        status = response.status_code
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status >= 500 and not (status == 503 and "503" in documented):
            result.server_errors.append(f"{key} -> {status}: {response.text[:200]}")
        if str(status) not in documented and "default" not in documented:
            result.undocumented.setdefault(key, set()).add(status)

    with contextlib.suppress(Unsatisfiable):
        check()


def _headers(path: str, headers_for: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    matches = [prefix for prefix in headers_for if path.startswith(prefix)]
    return dict(headers_for[max(matches, key=len)]) if matches else {}
