"""Every method the package registers passes the retrieval-model contract (`model_contract.py`)."""

from pathlib import Path

import pytest
from model_contract import RetrievalModelTesterMixin
from tiny_methods import package_methods, tiny_case


@pytest.fixture(params=package_methods())
def case(request):
    return tiny_case(request.param)


class TestRegisteredMethods(RetrievalModelTesterMixin):
    pass


def test_the_package_registers_its_four_methods_each_with_its_own_folder():
    assert package_methods() == ["amfmn", "cmpagl", "galr", "msa"]
    models = Path(__file__).resolve().parents[2] / "src" / "rs_retrieval" / "models"
    assert all((models / name / "__init__.py").is_file() for name in package_methods())
