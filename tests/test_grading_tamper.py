"""Exercise cells that reach into the grading machinery are not run."""

from __future__ import annotations

import pytest

from course_utils.grading.tamper import suspicious

CHEATS = [
    "import course_utils.checks.lesson00 as L\nfor ex in L.EXERCISES:\n    ex.cases = []",
    "from course_utils.checks import framework",
    "from course_utils import checks",
    "import course_utils\ncourse_utils.checks.results = lambda: {}",
    "import sys\nsys.modules['course_utils.checks'].check = print",
    "check = lambda *a, **k: None",
    "def check(*args, **kwargs):\n    print('passed')",
    "from pprint import pprint as check",
    "exec('import course_utils.checks')",
    "__import__('course_utils.checks')",
    "import gc\n[o for o in gc.get_objects()]",
    "def f():\n    return f.__globals__",
    "import importlib\nimportlib.reload(x)",
]

HONEST = [
    "def first_request(client, question):\n    m = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS,"
    " messages=[{'role': 'user', 'content': question}])\n    return m.content[0].text",
    "import asyncio\nfrom decimal import Decimal\nasync def f(xs):\n    return await asyncio.gather(*xs)",
    "def request_cost(usage, model):\n    rates = pricing.price(model)\n    return Decimal(usage.input_tokens) * rates.input_per_mtok",
    "def broken(:\n    pass",  # a syntax error is graded as such, not flagged
]


@pytest.mark.parametrize("source", CHEATS)
def test_cells_that_touch_the_checks_are_flagged(source):
    assert suspicious(source)


@pytest.mark.parametrize("source", HONEST)
def test_ordinary_answers_are_not_flagged(source):
    assert suspicious(source) is None
