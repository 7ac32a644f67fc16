"""``forbid``: every route from a student's answer to a forbidden function is refused, then restored."""

from __future__ import annotations

import functools

import pytest

import course_utils.context
from course_utils import pricing, tokens
from course_utils.checks.forbid import COUNT_TOKENS, ForbiddenCall, forbid
from course_utils.checks.framework import CaseFailed
from course_utils.checks.sim import probe
from course_utils.context import accounting
from course_utils.pricing import cost as imported_cost

USAGE = {"input_tokens": 1_000, "output_tokens": 200}
MODEL = "claude-haiku-5-5"
FORBIDDEN = {"pricing.cost": pricing.cost, "pricing.cost_breakdown": pricing.cost_breakdown}
ORIGINALS = (pricing.cost, pricing.cost_breakdown)


def _run(answer, *args):
    with forbid(answer, FORBIDDEN, task="work out the cost"):
        return answer(*args)


def module_attribute(usage, model):
    return pricing.cost(usage, model)


def imported_global(usage, model):
    return imported_cost(usage, model)


def default_argument(usage, model, _cost=pricing.cost):
    return _cost(usage, model)


def keyword_only_default(usage, model, *, _cost=pricing.cost_breakdown):
    return sum(_cost(usage, model).values())


def _closure():
    price_it = pricing.cost

    def answer(usage, model):
        return price_it(usage, model)

    return answer


ALIAS = pricing.cost_breakdown  # the same function under another name


def alias(usage, model):
    return sum(ALIAS(usage, model).values())


def _helper(usage, model, _c=pricing.cost):
    return _c(usage, model)


def through_a_helper(usage, model):
    return _helper(usage, model)


class Pricer:
    rate = staticmethod(pricing.cost)

    def __init__(self):
        self.fn = pricing.cost

    def __call__(self, usage, model):
        return self.fn(usage, model)

    def method(self, usage, model):
        return self.rate(usage, model)


BREAKDOWN_PARTIAL = functools.partial(pricing.cost_breakdown)
"""A partial of the library, held in a global and bound as a default (its ``func`` cannot be swapped)."""

ROUTES = {
    "module attribute": module_attribute,
    "from x import y": imported_global,
    "default argument": default_argument,
    "keyword-only default": keyword_only_default,
    "closure": _closure(),
    "alias": alias,
    "helper's default": through_a_helper,
    "lambda": lambda usage, model: pricing.cost(usage, model),
    "partial": functools.partial(default_argument),
    "partial of the library": functools.partial(pricing.cost),
    "partial bound as a default": lambda usage, model, _c=BREAKDOWN_PARTIAL: sum(_c(usage, model).values()),
    "partial read from a global": lambda usage, model: sum(BREAKDOWN_PARTIAL(usage, model).values()),
    "callable object": Pricer(),
    "bound method": Pricer().method,
}


def _assert_restored():
    assert (pricing.cost, pricing.cost_breakdown) == ORIGINALS
    assert imported_cost is ORIGINALS[0] and ALIAS is ORIGINALS[1]
    assert default_argument.__defaults__ == (ORIGINALS[0],)
    assert keyword_only_default.__kwdefaults__ == {"_cost": ORIGINALS[1]}
    assert ROUTES["closure"].__closure__[0].cell_contents is ORIGINALS[0]
    assert Pricer.__dict__["rate"].__func__ is ORIGINALS[0]
    assert ROUTES["callable object"].fn is ORIGINALS[0]
    assert pricing.cost(USAGE, MODEL) > 0


@pytest.mark.parametrize("answer", list(ROUTES.values()), ids=list(ROUTES))
def test_every_route_is_refused_and_restored(answer):
    with pytest.raises(
        ForbiddenCall, match=r"write it yourself: the exercise is to work out the cost .* called pricing\.cost"
    ):
        _run(answer, USAGE, MODEL)
    _assert_restored()


def test_a_refusal_is_a_case_failure_with_a_hint():
    with pytest.raises(CaseFailed) as info:
        _run(module_attribute, USAGE, MODEL)
    assert info.value.hint and "pricing.cost" in info.value.hint


def test_a_swallowed_refusal_still_fails():
    def swallows(usage, model):
        try:
            return pricing.cost(usage, model)
        except Exception:
            return 0

    with pytest.raises(ForbiddenCall, match="pricing.cost"):
        _run(swallows, USAGE, MODEL)
    _assert_restored()


def test_a_refusal_followed_by_another_error_is_reported_as_the_refusal():
    def falls_over(usage, model):
        try:
            return pricing.cost_breakdown(usage, model)
        except Exception:
            raise KeyError("no fallback")

    with pytest.raises(ForbiddenCall, match="pricing.cost_breakdown"):
        _run(falls_over, USAGE, MODEL)
    _assert_restored()


def test_everything_is_restored_when_the_answer_raises_its_own_error():
    def broken(usage, model):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        _run(broken, USAGE, MODEL)
    _assert_restored()


def test_an_answer_that_does_not_call_the_library_runs_normally():
    def own_arithmetic(usage, model):
        p = pricing.price(model)
        return (usage["input_tokens"] * p.input_per_mtok + usage["output_tokens"] * p.output_per_mtok) / 1_000_000

    assert _run(own_arithmetic, USAGE, MODEL) == ORIGINALS[0](USAGE, MODEL)


def test_library_internals_and_reexports_refuse_too():
    # request_tokens calls account() through its module's globals; the package re-exports both.
    forbidden = {"context.account": accounting.account}
    body = {"model": "sim-teaching-4k", "messages": [{"role": "user", "content": "Hi"}]}
    for answer in (accounting.request_tokens, lambda b: course_utils.context.account(b).total):
        with pytest.raises(ForbiddenCall, match="context.account"):
            with forbid(answer, forbidden, task="count"):
                answer(body)
    assert course_utils.context.account is accounting.account
    assert accounting.request_tokens(body) == tokens.count_request(body) > 0


def test_the_simulator_is_never_refused():
    # The ledger prices every request with pricing.cost; a check's answer may use the API meanwhile.
    p = probe()

    def asks_the_api(usage, model):
        reply = p.client().messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "Hi"}])
        return reply.usage.input_tokens

    assert _run(asks_the_api, USAGE, MODEL) > 0
    assert float(p.requests()["cost_usd"].iloc[-1]) > 0


def test_the_count_tokens_endpoint_is_refused_through_any_client():
    p = probe()
    client = p.client()
    raw = client.messages.with_raw_response  # made before the check: still covered
    params = {"model": "sim-teaching-4k", "messages": [{"role": "user", "content": "Hi"}]}

    for answer in (
        lambda: client.messages.count_tokens(**params).input_tokens,
        lambda: raw.count_tokens(**params).parse().input_tokens,
        lambda: client.beta.messages.count_tokens(**params).input_tokens,
    ):
        with pytest.raises(ForbiddenCall, match="count_tokens"):
            with forbid(answer, {}, task="count a request's tokens", endpoints=(COUNT_TOKENS,)):
                answer()
    # Other endpoints still work during the check, and count_tokens afterwards.
    with forbid(lambda: None, {}, task="count", endpoints=(COUNT_TOKENS,)):
        client.messages.create(max_tokens=5, **params)
    assert client.messages.count_tokens(**params).input_tokens > 0


# ----- the reference itself, a subclass, an instance, a call into a class's methods (issue 27) -----
class Meter:
    """A stand-in for a library class an exercise asks the student to write."""

    def __init__(self, limit):
        self.limit = limit

    def take(self, n):
        return n <= self.limit

    @property
    def left(self):
        return self.limit


CLASS_FORBIDDEN = {"lib.Meter": Meter}


class MeterOfMine(Meter):
    pass


_EARLIER_METER = Meter(5)


class HoldsAMeter:
    def __init__(self, limit):
        self.inner = _EARLIER_METER

    def take(self, n):
        return self.inner.take(n)


class ReadsItsProperty:
    def __init__(self, limit):
        self.inner = _EARLIER_METER

    def take(self, n):
        return n <= self.inner.left


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (pricing.cost, "your answer is pricing.cost"),
        (functools.wraps(pricing.cost)(lambda usage, model: 0), "your answer is pricing.cost"),
    ],
)
def test_the_reference_itself_is_refused_before_it_runs(answer, phrase):
    with pytest.raises(ForbiddenCall, match=phrase):
        _run(answer, USAGE, MODEL)
    _assert_restored()


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (Meter, "your answer is lib.Meter"),
        (MeterOfMine, "your answer subclasses lib.Meter"),
        (Meter(3).take, "your answer is an instance of lib.Meter"),
        (HoldsAMeter, "your function called lib.Meter.take"),
        (ReadsItsProperty, "your function called lib.Meter.left"),
    ],
)
def test_a_class_reference_is_refused_by_every_route(answer, phrase):
    with pytest.raises(ForbiddenCall, match=phrase):
        with forbid(answer, CLASS_FORBIDDEN, task="meter"):
            made = answer(3)
            made.take(1) if hasattr(made, "take") else None
    assert Meter.__dict__["take"].__name__ == "take" and Meter(2).take(1) and Meter(4).left == 4


def test_a_class_of_its_own_passes_and_the_check_can_still_print_the_reference():
    class OwnMeter:
        def __init__(self, limit):
            self.limit = limit

        def take(self, n):
            return n <= self.limit

    with forbid(OwnMeter, CLASS_FORBIDDEN, task="meter"):
        assert OwnMeter(3).take(2)
        assert "Meter" in repr(_EARLIER_METER)  # dunder methods stay: the check may print
