"""The envelope's message id is a version-4 UUID, formatted without building a uuid.UUID."""

import uuid

from hypothesis import given, strategies as st

from viewer_service.api.envelope import message_id, uuid4_text


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_formatted_like_uuid(bits):
    assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_message_ids_are_random_version_4_uuids():
    ids = {message_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
