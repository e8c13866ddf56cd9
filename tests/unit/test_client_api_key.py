"""RaglineClient(api_key=...): the key goes into every call's metadata and nowhere else."""

from __future__ import annotations

import pytest

from ragline_client import RaglineClient

pytestmark = pytest.mark.unit

KEY = "rl_0123456789ab_" + "S3cr3t" * 8


def test_the_key_travels_as_a_bearer_authorization_entry() -> None:
    with RaglineClient("127.0.0.1:1", api_key=KEY, metadata=[("x-trace", "1")]) as client:
        assert client._metadata == (("x-trace", "1"), ("authorization", f"Bearer {KEY}"))
        assert KEY not in repr(client) and KEY not in str(vars(client).get("address"))
    with RaglineClient("127.0.0.1:1") as client:
        assert client._metadata == ()


@pytest.mark.parametrize(
    "bad", [KEY + " ", "rl_x\nsecret", "clé-secrète", KEY[:20] + "\t" + KEY[20:]]
)
def test_a_key_that_cannot_be_one_is_refused_without_being_quoted(bad: str) -> None:
    with pytest.raises(ValueError) as caught:
        RaglineClient("127.0.0.1:1", api_key=bad)
    assert "secret" not in str(caught.value).replace("may be a secret", "")
    assert bad.strip() not in str(caught.value)


def test_a_key_and_an_authorization_entry_are_one_too_many() -> None:
    with pytest.raises(ValueError, match="not both") as caught:
        RaglineClient("127.0.0.1:1", api_key=KEY, metadata=[("Authorization", "Bearer x")])
    assert KEY not in str(caught.value)
    with pytest.raises(TypeError):
        RaglineClient("127.0.0.1:1", api_key="")
