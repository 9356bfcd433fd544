from fhir_platform.fhir.changes import content_hash, fields_affected


def test_create_lists_top_level_fields() -> None:
    assert fields_affected(None, {"resourceType": "Patient", "id": "1", "name": [], "meta": {"versionId": "1"}}) == ["id", "name"]


def test_primitive_lists_are_one_field_and_objects_recurse() -> None:
    a = {"name": [{"family": "A", "given": ["X"]}], "telecom": [{"value": "1"}]}
    b = {"name": [{"family": "A", "given": ["Y", "Z"]}], "telecom": [{"value": "2"}, {"value": "3"}]}
    assert fields_affected(a, b) == ["name.0.given", "telecom.0.value", "telecom.1"]


def test_added_and_removed_elements() -> None:
    assert fields_affected({"a": 1, "b": {"c": 1}}, {"b": {}, "d": 2}) == ["a", "b.c", "d"]
    assert fields_affected({"x": [{"k": 1}, {"k": 2}]}, {"x": [{"k": 1}]}) == ["x.1"]
    assert fields_affected({"x": [{"k": 1}]}, {"x": "scalar"}) == ["x"]


def test_server_meta_is_not_a_change_nor_hashed() -> None:
    a = {"resourceType": "Patient", "meta": {"versionId": "1", "lastUpdated": "t1", "source": "s"}}
    b = {"resourceType": "Patient", "meta": {"versionId": "2", "lastUpdated": "t2", "source": "s"}}
    assert fields_affected(a, b) == []
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "gender": "male"})
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
