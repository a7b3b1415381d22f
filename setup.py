"""Package layout that pyproject.toml cannot express: data folders mapped into the package.

The recipes (`configs/`) and Hub card templates (`hub_cards/`) stay in the repository's top level,
where a reader finds them; `package_dir` builds them into the wheel as `rs_retrieval.recipes` and
`rs_retrieval.card_templates` (one copy, no symlinks; their `__init__.py` lets editable installs
import them as well). Every directory under `src/rs_retrieval/` is
a package (namespace discovery), so modules and data files added in new folders ship without
editing this file. Everything else is in pyproject.toml.
"""

import runpy

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = runpy.run_path("src/rs_retrieval/packaged.py")["DATA_PACKAGES"]

setup(
    packages=find_namespace_packages("src", include=["rs_retrieval", "rs_retrieval.*"], exclude=["*.__pycache__"])
    + list(DATA_PACKAGES),
    package_dir={"": "src", **DATA_PACKAGES},
)
