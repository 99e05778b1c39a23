"""lbipam.k8s.errors: HTTP codes and Status bodies become the right typed errors; back-off and retry."""

from __future__ import annotations

import json
import random

import pytest

from lbipam.k8s.errors import (
    AlreadyExists,
    Backoff,
    BadRequest,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    PermanentError,
    TemporaryError,
    Unauthorized,
    error_from_body,
    error_from_status,
    retry,
)


def status(code: int, reason: str, message: str = "boom", **details: object) -> dict[str, object]:
    out: dict[str, object] = {"kind": "Status", "status": "Failure", "code": code, "reason": reason}
    out["message"] = message
    if details:
        out["details"] = details
    return out


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (400, "BadRequest", BadRequest),
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", AlreadyExists),
        (410, "Expired", Expired),
        (410, "Gone", Expired),
        (415, "UnsupportedMediaType", PermanentError),
        (422, "Invalid", Invalid),
        (429, "TooManyRequests", TemporaryError),
        (500, "InternalError", TemporaryError),
        (502, "", TemporaryError),
        (503, "ServiceUnavailable", TemporaryError),
        (504, "Timeout", TemporaryError),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.__name__,
)
def test_codes_map_to_typed_errors(code: int, reason: str, expected: type[KubeError]) -> None:
    err = error_from_status(code, status(code, reason))
    assert type(err) is expected
    assert (err.code, err.reason, err.message) == (code, reason, "boom")
    assert err.status["code"] == code


def test_temporary_and_permanent_are_disjoint_families() -> None:
    assert issubclass(Conflict, PermanentError)
    assert issubclass(Expired, PermanentError)
    assert not issubclass(TemporaryError, PermanentError)
    assert issubclass(TemporaryError, KubeError)


def test_invalid_carries_its_causes() -> None:
    causes = [{"field": "spec.blocks[0].cidr", "reason": "FieldValueInvalid", "message": "bad cidr"}]
    err = error_from_status(422, status(422, "Invalid", causes=causes))
    assert isinstance(err, Invalid)
    assert err.causes == causes
    assert "spec.blocks[0].cidr: bad cidr" in str(err)


def test_a_non_status_body_still_gives_a_typed_error() -> None:
    err = error_from_body(502, b"<html>bad gateway</html>")
    assert isinstance(err, TemporaryError)
    assert err.code == 502
    assert "bad gateway" in err.message


def test_retry_after_is_read_from_the_header() -> None:
    err = error_from_body(429, json.dumps(status(429, "TooManyRequests")).encode(), "3")
    assert isinstance(err, TemporaryError)
    assert err.retry_after == 3.0


def test_backoff_grows_exponentially_under_its_cap_and_resets() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(12)]
    ceilings = [min(1.0, 0.1 * 2**n) for n in range(12)]
    assert all(0 < d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays), "jitter: no two delays alike"
    backoff.reset()
    assert backoff.next() <= 0.1


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0)], ids=["zero-base", "cap-below-base"])
def test_backoff_rejects_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="back-off"):
        Backoff(base=base, cap=cap)


class Flaky:
    """An operation failing with the given errors, then succeeding."""

    def __init__(self, *errors: KubeError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


FAST = Backoff(base=0.001, cap=0.002)


async def test_retry_retries_temporary_errors_until_success() -> None:
    op = Flaky(TemporaryError("x", code=500), TemporaryError("y", code=429))
    assert await retry(op, backoff=FAST) == "done"
    assert op.calls == 3


async def test_retry_gives_up_after_its_attempts() -> None:
    op = Flaky(*(TemporaryError(str(n), code=503) for n in range(5)))
    with pytest.raises(TemporaryError, match="2"):
        await retry(op, attempts=3, backoff=FAST)
    assert op.calls == 3


async def test_retry_raises_permanent_errors_at_once() -> None:
    op = Flaky(NotFound("gone", code=404))
    with pytest.raises(NotFound):
        await retry(op, backoff=FAST)
    assert op.calls == 1


@pytest.mark.parametrize(
    ("conflicts", "calls"), [(False, 1), (True, 2)], ids=["conflict-raised", "conflict-retried"]
)
async def test_retry_retries_conflicts_only_when_asked(conflicts: bool, calls: int) -> None:
    op = Flaky(Conflict("stale", code=409, reason="Conflict"))
    if conflicts:
        assert await retry(op, conflicts=True, backoff=FAST) == "done"
    else:
        with pytest.raises(Conflict):
            await retry(op, backoff=FAST)
    assert op.calls == calls
