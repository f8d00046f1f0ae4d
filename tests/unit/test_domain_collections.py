"""Deriving leaves, required leaves and units from a Sunbird hierarchy (pure, no I/O)."""

import pytest

from viewer_service.api.errors import http_status
from viewer_service.domain.collections import COLLECTION_MIME, MAX_DEPTH, from_hierarchy, is_optional
from viewer_service.errors import InvalidCollection


def unit(uid, *children, optional=None):
    node = {"identifier": uid, "mimeType": COLLECTION_MIME, "children": list(children)}
    if optional is not None:
        node["relationalMetadata"] = {"optional": optional}
    return node


def leaf(cid, optional=None, mime="video/mp4"):
    node = {"identifier": cid, "mimeType": mime}
    if optional is not None:
        node["relationalMetadata"] = {"optional": optional}
    return node


def test_leaves_are_derived_from_nested_units_in_order():
    doc = {"identifier": "course", "name": "C",
           "children": [unit("u1", leaf("a"), unit("u1.1", leaf("b"), leaf("c"))), unit("u2", leaf("d")), leaf("e")]}
    c = from_hierarchy(doc)
    assert c.collection_id == "course" and c.document is doc
    assert c.leaf_nodes == ("a", "b", "c", "d", "e")
    assert c.required_leaf_nodes == c.leaf_nodes and c.leaf_nodes_count == 5
    assert c.units == {"u1.1": ("b", "c"), "u1": ("a", "b", "c"), "u2": ("d",)}


def test_optional_leaves_and_units_do_not_count():
    doc = {"children": [
        unit("u1", leaf("a"), leaf("b", optional=True)),
        unit("u2", leaf("c"), unit("u2.1", leaf("d")), optional="true"),  # everything below is optional
        unit("u3", leaf("e", optional="TRUE"), leaf("f", optional="false"), leaf("g", optional=False)),
    ]}
    c = from_hierarchy(doc, "course")
    assert c.leaf_nodes == ("a", "b", "c", "d", "e", "f", "g")
    assert c.required_leaf_nodes == ("a", "f", "g") and c.leaf_nodes_count == 3
    # A unit counts its own contents: its own optional mark matters to its parent only.
    assert c.units == {"u1": ("a",), "u2.1": ("d",), "u2": ("c", "d"), "u3": ("f", "g")}


def test_a_leaf_used_in_two_units_is_listed_once_and_required_if_any_use_is():
    doc = {"children": [unit("u1", leaf("x"), leaf("y", optional=True)), unit("u2", leaf("x"), leaf("y")),
                        unit("u3", leaf("z", optional=True)), unit("u4", leaf("z"), optional=True)]}
    c = from_hierarchy(doc, "course")
    assert c.leaf_nodes == ("x", "y", "z")
    assert c.required_leaf_nodes == ("x", "y")  # z is optional in both its uses
    assert c.units["u1"] == ("x",) and c.units["u2"] == ("x", "y") and c.units["u4"] == ("z",)


def test_given_leaf_nodes_win_and_the_hierarchy_only_marks_optional_ones():
    doc = {"leafNodes": ["a", "b", "b", "extra"], "children": [unit("u1", leaf("a"), leaf("b", optional=True), leaf("c"))]}
    c = from_hierarchy(doc, "course")
    assert c.leaf_nodes == ("a", "b", "extra")
    assert c.required_leaf_nodes == ("a", "extra")
    assert c.units == {"u1": ("a", "c")}


@pytest.mark.parametrize("doc", [{}, {"children": None}, {"children": []}, {"leafNodes": []}])
def test_missing_children_mean_no_leaves(doc):
    c = from_hierarchy(doc, "course")
    assert (c.leaf_nodes, c.required_leaf_nodes, c.units, c.leaf_nodes_count) == ((), (), {}, 0)


def test_units_without_children_and_leaves_without_mime_type():
    c = from_hierarchy({"children": [{"identifier": "u", "mimeType": COLLECTION_MIME}, {"identifier": "x"}]}, "course")
    assert c.leaf_nodes == ("x",) and c.units == {"u": ()}


def test_children_of_a_content_are_not_leaves_of_the_collection():
    c = from_hierarchy({"children": [{"identifier": "x", "mimeType": "application/pdf", "children": [leaf("y")]}]}, "c")
    assert c.leaf_nodes == ("x",)


@pytest.mark.parametrize("value, expected", [
    (True, True), ("true", True), ("True", True), (" true ", True),
    (False, False), ("false", False), (None, False), ("yes", False), (1, False),
])
def test_optional_flag(value, expected):
    assert is_optional({"relationalMetadata": {"optional": value}}) is expected


def test_relational_metadata_missing_or_odd_is_not_optional():
    assert not is_optional({}) and not is_optional({"relationalMetadata": None})
    assert not is_optional({"relationalMetadata": "optional"})


@pytest.mark.parametrize("doc, field", [
    ([], "request"),
    ({"children": {"identifier": "x"}}, "request.children"),
    ({"children": ["x"]}, "request.children.0"),
    ({"children": [{"mimeType": "video/mp4"}]}, "request.children.0.identifier"),
    ({"children": [{"identifier": ""}]}, "request.children.0.identifier"),
    ({"children": [unit("u", {"identifier": "x" * 257})]}, "request.children.0.children.0.identifier"),
    ({"children": [{"identifier": "bad\nid"}]}, "request.children.0.identifier"),
    ({"children": [{"identifier": "x", "mimeType": 5}]}, "request.children.0.mimeType"),
    ({"children": [unit("u", leaf("a")) | {"children": "a"}]}, "request.children.0.children"),
    ({"leafNodes": "a"}, "request.leafNodes"),
    ({"leafNodes": ["a", 7]}, "request.leafNodes.1"),
    ({"identifier": "other"}, "request.identifier"),
    ({"name": ["x"]}, "request.name"),
])
def test_malformed_documents_name_the_field(doc, field):
    with pytest.raises(InvalidCollection) as e:
        from_hierarchy(doc, "course")
    assert e.value.field == field and e.value.code == "INVALID_VALUE" and http_status(e.value) == 400


def test_the_id_comes_from_the_document_when_not_given():
    with pytest.raises(InvalidCollection):
        from_hierarchy({"name": "no id"})
    assert from_hierarchy({"identifier": "same"}, "same").collection_id == "same"


def test_nesting_is_bounded():
    node = leaf("deep")
    for i in range(MAX_DEPTH):
        node = unit(f"u{i}", node)
    assert from_hierarchy({"children": [node]}, "c").leaf_nodes == ("deep",)
    with pytest.raises(InvalidCollection, match="nest"):
        from_hierarchy({"children": [unit("top", node)]}, "c")
