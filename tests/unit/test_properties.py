import pytest
from ansible_collections.metal.kafka.plugins.module_utils import properties


def test_render_sorted_and_escaped():
    text = properties.render({"b.key": "2", "a.key": "x=y", "c": "line\nbreak"})
    assert text.splitlines() == ["a.key=x=y", "b.key=2", "c=line\\nbreak"]


def test_roundtrip():
    data = {"listeners": "CLIENT://0.0.0.0:9092", "weird key": " lead", "p": "a\\b", "e": ""}
    assert properties.parse(properties.render(data)) == data


def test_parse_kafka_meta_properties():
    text = "#\n#Tue Nov 28 10:00:00 UTC 2026\nnode.id=4\ndirectory.id=abc\nversion=1\ncluster.id=Ab_cd-EF\n"
    assert properties.parse(text) == {"node.id": "4", "directory.id": "abc", "version": "1",
                                      "cluster.id": "Ab_cd-EF"}


def test_parse_continuation_and_separators():
    assert properties.parse("a : 1\nb 2\nc=3 \\\n  4\n! comment\n") == {"a": "1", "b": "2", "c": "3 4"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, 'is the YAML boolean True; Kafka expects a string: quote it, e.g. x: "true"'),
        (False, 'quote it, e.g. x: "false"'),
        (3, "is the YAML number 3"),
        (None, "is empty (null)"),
        (["a", "b"], 'join lists with commas, e.g. "a,b"'),
    ],
)
def test_render_refuses_non_strings(value, fragment):
    with pytest.raises(properties.PropertiesError) as exc:
        properties.render({"x": value})
    assert fragment in str(exc.value)
