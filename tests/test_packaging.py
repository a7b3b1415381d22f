"""Packaged recipes and card templates resolved from a checkout: names, paths, listing, errors."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import rs_retrieval
from rs_retrieval.cards.sections import card_template
from rs_retrieval.cli import main
from rs_retrieval.packaged import DATA_PACKAGES, packaged_files
from rs_retrieval.training.recipe import RecipeError, find_recipe, load_recipe, packaged_recipes, recipe_summary

ROOT = Path(__file__).resolve().parents[1]


def test_data_packages_are_the_repository_folders():
    assert DATA_PACKAGES == {"rs_retrieval.recipes": "configs", "rs_retrieval.card_templates": "hub_cards"}
    assert Path(packaged_files("rs_retrieval.recipes")) == ROOT / "configs"
    assert Path(packaged_files("rs_retrieval.card_templates")) == ROOT / "hub_cards"
    with pytest.raises(KeyError, match="not a data subpackage"):
        packaged_files("rs_retrieval.models")


def test_packaged_recipes_are_every_config_file():
    assert list(packaged_recipes()) == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def test_recipe_by_name_equals_recipe_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # names resolve from any working directory
    by_path = load_recipe(ROOT / "configs" / "amfmn_synth.yaml", ["training.epochs=2"])
    assert load_recipe("amfmn_synth", ["training.epochs=2"]) == by_path
    assert load_recipe("amfmn_synth.yaml", ["training.epochs=2"]) == by_path
    assert by_path.training.epochs == 2


def test_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "configs" / "amfmn_synth.yaml").read_text().replace("epochs: 12", "epochs: 3")
    Path("amfmn_synth.yaml").write_text(text)
    assert find_recipe("amfmn_synth.yaml") == Path("amfmn_synth.yaml")
    assert load_recipe("amfmn_synth.yaml").training.epochs == 3
    assert load_recipe("amfmn_synth").training.epochs == 12  # the bare name is the packaged recipe


@pytest.mark.parametrize("name", ["no_such_recipe", "configs/no_such.yaml", "elsewhere/amfmn_synth.yaml"])
def test_unknown_recipe_names_the_packaged_ones(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError, match=r"recipe file not found: .*packaged: amfmn_rsicd, .*amfmn_synth"):
        load_recipe(name)


def test_recipe_summary_is_the_first_sentence_of_the_leading_comment():
    text = (
        "# GaLR, small configuration on rs_synth (a few minutes on CPU). "
        "The local graph\n# comes from boxes.\nmodel:\n  type: galr\n# later\n"
    )
    assert recipe_summary(text) == "GaLR, small configuration on rs_synth (a few minutes on CPU)"
    assert recipe_summary("# wrapped over\n# two lines\nmodel: {}\n") == "wrapped over two lines"
    assert recipe_summary("model: {}\n") == ""


def test_recipes_command_lists_one_line_per_recipe(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(packaged_recipes())
    amfmn = next(line for line in lines if line.startswith("amfmn_synth "))
    assert re.fullmatch(
        r"amfmn_synth +amfmn +rs_synth +AMFMN, small configuration on the synthetic rs_synth dataset: .+", amfmn
    )


def test_train_command_reports_an_unknown_recipe(capsys):
    assert main(["train", "--config", "amfmn_synht"]) == 2
    assert "recipe file not found: amfmn_synht" in capsys.readouterr().err


def test_card_templates_come_from_the_package_or_a_given_folder(tmp_path):
    assert card_template("model_card.md", None).template == (ROOT / "hub_cards" / "model_card.md").read_text()
    (tmp_path / "model_card.md").write_text("custom $x")
    assert card_template("model_card.md", tmp_path).substitute(x=1) == "custom 1"


def test_version_has_one_source():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rs_retrieval.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", rs_retrieval.__version__)


def test_every_registered_method_names_a_packaged_default_recipe_of_its_own_method():
    import yaml

    from rs_retrieval.models.registry import get_method, list_methods
    from rs_retrieval.training.recipe import packaged_recipes

    recipes = packaged_recipes()
    for name in list_methods():
        method = get_method(name)
        if method.default_recipe is None:
            continue
        assert method.default_recipe in recipes, name
        recipe = yaml.safe_load(recipes[method.default_recipe].read_text())
        assert recipe["model"]["type"] == name, name
