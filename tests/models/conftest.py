"""`model`: the tiny model of the method named by the test module's `METHOD`, built once per module."""

import pytest
from tiny_methods import tiny_case


@pytest.fixture(scope="module")
def model(request):
    return tiny_case(request.module.METHOD).model()
