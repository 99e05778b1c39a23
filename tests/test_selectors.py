"""LabelSelector matching, as Kubernetes defines it."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.core.selectors import SelectorError, compile_selector, matches

LABELS = {"app": "web", "tier": "front", "example.com/zone": "a"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(None, True, id="absent-selects-everything"),
        pytest.param({}, True, id="empty-selects-everything"),
        pytest.param({"matchLabels": {"app": "web"}}, True, id="matchLabels-hit"),
        pytest.param({"matchLabels": {"app": "db"}}, False, id="matchLabels-miss"),
        pytest.param({"matchLabels": {"app": "web", "tier": "back"}}, False, id="matchLabels-all-must-hold"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}, True, id="In"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "nope", "operator": "In", "values": ["x"]}]},
            False,
            id="In-missing-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]},
            False,
            id="NotIn",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["x"]}]},
            True,
            id="NotIn-missing-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "example.com/zone", "operator": "Exists"}]}, True, id="Exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False, id="DoesNotExist"
        ),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
            },
            False,
            id="labels-and-expressions-are-ANDed",
        ),
    ],
)
def test_matching(selector: dict[str, Any] | None, expected: bool) -> None:
    assert matches(selector, LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "field", "message"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            "selector.matchExpressions[0].operator",
            "'Equals' is not one of",
            id="unknown-operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "selector.matchExpressions[0].values",
            "non-empty",
            id="In-without-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "selector.matchExpressions[0].values",
            "must be empty",
            id="Exists-with-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]},
            "selector.matchExpressions[0].key",
            "'bad key!'",
            id="bad-key",
        ),
        pytest.param(
            {"matchLabels": {"app": "a\nb"}}, "selector.matchLabels[app]", "invalid", id="newline-value"
        ),
        pytest.param(
            {"matchLabels": {"UPPER.example.com/x": "1"}},
            "selector.matchLabels[UPPER.example.com/x]",
            "prefix",
            id="bad-prefix",
        ),
        pytest.param(
            {"matchLabels": {"app": "web\n"}}, "selector.matchLabels[app]", "invalid", id="trailing-newline"
        ),
        pytest.param({"matchLabel": {}}, "selector", "matchLabel", id="typo"),
        pytest.param(["app"], "selector", "must be an object", id="not-an-object"),
    ],
)
def test_invalid_selectors_name_the_field(selector: Any, field: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        compile_selector(selector)
    assert err.value.field == field
    assert message in str(err.value)


def test_compiled_selector_is_reusable() -> None:
    selector = compile_selector({"matchLabels": {"app": "web"}})
    assert selector.matches(LABELS)
    assert not selector.matches({})
    assert compile_selector(None).is_everything
