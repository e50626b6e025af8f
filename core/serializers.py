"""The project's serializer base classes."""

from __future__ import annotations

import copy

from rest_framework import serializers


class ModelSerializer(serializers.ModelSerializer):
    """DRF's ModelSerializer, building its fields from the model once per class, not per instance.

    DRF introspects the model and builds every field again on each serializer instance: about
    1 ms of a bounty detail's 1.1 ms of serialising, 0.6 ms of validating a new bounty's body
    (docs/perf/write-path.md). The fields depend only on the class (its Meta and declared
    fields, never the instance or the context), so the first instance keeps what it built and
    every instance gets a deep copy of it, the copy DRF itself makes of a serializer's declared
    fields: each instance binds and may change its own fields.
    """

    def get_fields(self):
        cls = type(self)
        built = cls.__dict__.get("_fields_built")
        if built is None:
            built = super().get_fields()
            cls._fields_built = built  # two threads may both build it: the same fields
        return copy.deepcopy(built)
