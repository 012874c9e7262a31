"""The writer's Value protos against Feast's own converter: the online store must hold the same bytes whichever
path wrote a row."""

from __future__ import annotations

import pytest
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from eaglerec.feature_store import proto_converter

VALUES = {
    ValueType.INT32: [None, 0, 7, -3, 2**31 - 1],
    ValueType.INT64: [None, 0, 1_700_000_000, -(2**40)],
    ValueType.DOUBLE: [None, 0.0, 3.25, -1e-300, 4.123456789012345],
    ValueType.STRING: [None, "", "Drama", "Sci-Fi", "(no genres listed)", "Café"],
    ValueType.INT32_LIST: [None, [], [1, 2, 3]],
    ValueType.INT64_LIST: [None, [], [1_700_000_000, 2**40]],
    ValueType.DOUBLE_LIST: [None, [], [3.5, 4.0, 0.5]],
    ValueType.STRING_LIST: [None, [], ["Drama", "Comedy"]],
}


@pytest.mark.parametrize("value_type", list(VALUES), ids=lambda value_type: value_type.name)
def test_the_writer_builds_the_protos_feast_builds(value_type):
    convert = proto_converter(value_type)
    for value in VALUES[value_type]:
        expected = python_values_to_proto_values([value], value_type)[0]
        assert convert(value).SerializeToString() == expected.SerializeToString(), value
        assert convert(value) == expected, value
