"""Settings from the environment: each value parsed as its field's type, with clear refusals."""

from __future__ import annotations

import pytest

from ragline.config import Settings, _parse
from ragline.errors import ConfigurationError

pytestmark = pytest.mark.unit


def test_numbers_and_text_take_their_fields_types() -> None:
    settings = Settings.from_env(
        {
            "RAGLINE_MAX_QUEUE_DEPTH": "500",
            "RAGLINE_EMBED_GATHER_MS": "12.5",
            "RAGLINE_BROKER": "rabbitmq",
        }
    )
    assert settings.max_queue_depth == 500 and isinstance(settings.max_queue_depth, int)
    assert settings.embed_gather_ms == 12.5
    assert settings.broker == "rabbitmq"


@pytest.mark.parametrize("raw", ["lots", "1e", ""])
def test_a_number_that_does_not_parse_names_its_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"RAGLINE_MAX_QUEUE_DEPTH=.* is not a number"):
        Settings.from_env({"RAGLINE_MAX_QUEUE_DEPTH": raw})


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)]
)
def test_yes_no_values(raw: str, value: bool) -> None:
    assert _parse("RAGLINE_X", raw, bool) is value


def test_a_yes_no_value_that_is_neither_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_X='maybe' is not a yes/no value"):
        _parse("RAGLINE_X", "maybe", bool)
