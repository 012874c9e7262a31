"""The model catalogue: the project's file parses into kinds and models; malformed entries are refused by name."""

import pytest

from eaglerec.contracts.catalogue import CATALOGUE_FILE, CatalogueError, load_catalogue, parse_catalogue

pytestmark = pytest.mark.unit

KINDS = """
[kinds.ranker]
experiment = "r-exp"
registered_model = "r-model"
gate_metric = "auc"

[kinds.retriever]
experiment = "q-exp"
registered_model = "q-model"
gate_metric = "recall_at_10"
"""
ENTRY = """
[models.{name}]
kind = "{kind}"
module = "somewhere.{name}"
description = "a model"
baseline = false
registered = {registered}
default = {default}
{extra}
"""


def catalogue_text(*entries: dict) -> str:
    return KINDS + "".join(ENTRY.format(**{"kind": "ranker", "registered": "true", "default": "true", "extra": "",
                                           **entry}) for entry in entries)


def test_entries_keep_their_order_kind_and_registered_model():
    catalogue = parse_catalogue(catalogue_text({"name": "b"}, {"name": "a", "kind": "retriever", "default": "false"},
                                               {"name": "c", "registered": "false", "extra": 'aliases = ["cee"]'}))
    assert catalogue.names() == ["b", "a", "c"]
    assert catalogue.names("ranker") == ["b", "c"] and catalogue.names(defaults_only=True) == ["b", "c"]
    assert catalogue.entry("a").registered_model == "q-model" and catalogue.entry("c").registered_model is None
    assert catalogue.find_by_alias("cee", "ranker").name == "c" and catalogue.find_by_alias("cee", "retriever") is None
    with pytest.raises(CatalogueError, match="model 'd' is not in the catalogue .*expected one of b, a, c"):
        catalogue.entry("d")


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "extra": "colour = 1"}, r"\[models.x\]: unknown key\(s\) colour"),
    ({"name": "x", "kind": "reranker"}, r"\[models.x\]: kind 'reranker', expected one of ranker, retriever"),
    ({"name": "x", "default": '"yes"'}, r"\[models.x\]: default must be true or false"),
    ({"name": "Bad-Name"}, "a name is lower-case letters"),
    ({"name": "x", "extra": 'aliases = ["x"]'}, "alias 'x' names another model too"),
])
def test_a_malformed_entry_is_refused_naming_it(entry, message):
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(catalogue_text(entry))


def test_an_entry_without_a_required_key_is_refused():
    text = catalogue_text({"name": "x"}).replace('description = "a model"\n', "")
    with pytest.raises(CatalogueError, match=r"\[models.x\] lacks description"):
        parse_catalogue(text)


def test_the_project_catalogue_parses_with_both_kinds_and_unique_names():
    catalogue = load_catalogue()
    assert set(catalogue.kinds) == {"ranker", "retriever"}
    assert catalogue.names("ranker") and catalogue.names("retriever")
    assert CATALOGUE_FILE.name == "models.toml"


def test_the_goals_name_models_of_the_catalogue():
    text = CATALOGUE_FILE.read_text().replace('reference_retriever = "ease"', 'reference_retriever = "eas"')
    with pytest.raises(CatalogueError, match=r"\[goals\] names eas"):
        parse_catalogue(text)
    assert load_catalogue().goals.reference_retriever in load_catalogue().names("retriever")


def test_a_kind_refits_unless_its_catalogue_entry_says_refit_false():
    assert all(kind.refit for kind in load_catalogue().kinds.values())
    text = CATALOGUE_FILE.read_text().replace('gate_metric = "auc"', 'gate_metric = "auc"\nrefit = false')
    assert not parse_catalogue(text).kinds["ranker"].refit
    with pytest.raises(CatalogueError, match="refit must be true or false"):
        parse_catalogue(text.replace("refit = false", 'refit = "no"'))
