"""`training.report_to`: which experiment trackers receive the run's logs, through Accelerate.

`log.jsonl` is always written (resumption and the figures read it); `report_to` adds Accelerate
trackers on top. Values, comma-separated: `tensorboard`, `wandb`, `jsonl` (log.jsonl only),
`all` (every installed tracker), `none` (no tracker), `auto` (the default: TensorBoard when
installed). A tracker asked for by name but not installed raises `MissingExtraError`.
"""

from __future__ import annotations

import importlib.util

from ..optional import require

#: Accelerate tracker name -> (module to import, extra that installs it).
TRACKERS = {"tensorboard": ("tensorboard", "tracking"), "wandb": ("wandb", "wandb")}
KEYWORDS = ("jsonl", "all", "none", "auto")
#: Run-directory subfolder handed to Accelerate as the trackers' logging dir.
LOGGING_DIR = "tensorboard"
PROJECT_NAME = "rs_retrieval"


def parse_report_to(value: str) -> list[str]:
    """The names in `value` (checked, no imports); raises ValueError naming unknown entries."""
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRACKERS and name not in KEYWORDS]
    if not names or unknown:
        raise ValueError(
            f"report_to: unknown tracker(s) {unknown or [value]}; "
            f"use a comma-separated list of {[*TRACKERS, *KEYWORDS]}"
        )
    if len(names) > 1 and {"none", "all", "auto"} & set(names):
        raise ValueError(f"report_to: 'none', 'all' and 'auto' stand alone, got {value!r}")
    return names


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_trackers(value: str) -> list[str]:
    """Accelerate `log_with` names for `report_to` (imports each named tracker, or explains the install)."""
    names = parse_report_to(value)
    if names == ["auto"]:
        return ["tensorboard"] if _installed("tensorboard") else []
    if names == ["all"]:
        return [name for name, (module, _) in TRACKERS.items() if _installed(module)]
    trackers = [name for name in names if name in TRACKERS]
    for name in trackers:
        module, extra = TRACKERS[name]
        require(module, extra, f"training.report_to={name}")
    return trackers


def tracker_config(recipe_dict: dict) -> dict:
    """The recipe flattened to `section.key` scalars (TensorBoard hparams accept only scalars)."""
    flat = {}
    for section, values in recipe_dict.items():
        for key, value in values.items() if isinstance(values, dict) else [("", values)]:
            if isinstance(value, (bool, int, float, str)):
                flat[f"{section}.{key}" if key else section] = value
    return flat
