"""Whatever a client sends, the answer is in the envelope and never a 500."""

import asyncio

import json
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=12,
)
fields = st.sampled_from(["userId", "contentId", "collectionId", "contextId", "ts", "progress",
                          "progressDetails", "progressdetails", "timespent"])
requests = st.dictionaries(fields, json_values, max_size=9)
bodies = st.one_of(
    st.builds(lambda r: {"request": r}, requests),
    st.builds(lambda r, p: {"request": r, "params": p}, requests, json_values),
    json_values,
)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("op", ["start", "update", "end", "read"])
def test_random_bodies_never_get_a_500(client, op):
    loop = asyncio.get_event_loop()

    @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def check(body):
        r = loop.run_until_complete(
            client.post(f"/v1/view/{op}", content=json.dumps(body),
                        headers={"content-type": "application/json"}))
        assert r.status_code < 500, r.text
        env = r.json()
        assert env["id"].startswith("api.") and env["params"]["status"] in {"success", "failed"}
        if r.status_code >= 400:
            assert env["params"]["err"] and "field" in env["result"]

    check()
