"""The pure key-document operations behind `emd keys`, and key masking."""

from __future__ import annotations

import pytest

from emd import keys
from emd.errors import CliError
from emd_proxy.auth import parse_key_document

DOC = {"default": "sk-default-0123456789", "ci": {"key": "sk-ci-0123456789", "models": ["a/dev"]}}


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("sk-emd-abcdefghijklmnopqrstuvwxyzXy9", "sk-e…Xy9"),
        ("sk-123456789", "sk-1…789"),  # 12 characters: the shortest that shows anything
        ("sk-12345678", "…"),
        ("", "…"),
        (None, None),
    ],
)
def test_mask_shows_a_short_prefix_and_suffix_only(key, shown) -> None:
    assert keys.mask(key) == shown


def test_mask_never_reveals_more_than_seven_characters() -> None:
    key = "sk-emd-" + "x" * 43
    masked = keys.mask(key)
    assert masked is not None
    assert len(masked.replace("…", "")) == 7


def test_list_keys_gives_names_scopes_and_keys_sorted() -> None:
    infos = keys.list_keys(DOC)
    assert [(i.name, i.key, i.models, i.scope) for i in infos] == [
        ("ci", "sk-ci-0123456789", ["a/dev"], "a/dev"),
        ("default", "sk-default-0123456789", None, "all models"),
    ]
    [unscoped_object] = keys.list_keys({"k": {"key": "sk-1"}})
    assert unscoped_object.scope == "all models"
    [nothing] = keys.list_keys({"k": {"key": "sk-1", "models": []}})
    assert nothing.scope == "no models"


def test_default_key_reads_both_formats() -> None:
    assert keys.default_key({"default": "sk-1"}) == "sk-1"
    assert keys.default_key({"default": {"key": "sk-2", "models": []}}) == "sk-2"
    assert keys.default_key({"other": "sk-1"}) is None
    assert keys.default_key({"default": ""}) is None


def test_create_an_unscoped_key_as_a_plain_string() -> None:
    document, key = keys.create(DOC, "app")
    assert key.startswith("sk-emd-")
    assert len(key) > 40
    assert document["app"] == key
    assert {k: v for k, v in document.items() if k != "app"} == DOC  # others untouched
    assert "app" not in DOC  # the input is not modified
    parse_key_document(document)  # the proxy can read it


def test_create_a_scoped_key_sorts_and_dedupes_models() -> None:
    document, key = keys.create(DOC, "team", ["b/dev", "a/dev", "b/dev"])
    assert document["team"] == {"key": key, "models": ["a/dev", "b/dev"]}
    [team] = [k for k in parse_key_document(document) if k.principal.name == "team"]
    assert team.principal.models == frozenset({"a/dev", "b/dev"})


def test_created_keys_differ() -> None:
    assert keys.create({}, "a")[1] != keys.create({}, "a")[1]


def test_create_refuses_an_existing_name() -> None:
    with pytest.raises(CliError, match="exists already"):
        keys.create(DOC, "ci")


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "a" * 65, "ä", "a/b"])
def test_create_refuses_odd_names(name) -> None:
    with pytest.raises(CliError, match="invalid key name"):
        keys.create(DOC, name)


def test_revoke_removes_only_that_key() -> None:
    assert keys.revoke(DOC, "ci") == {"default": DOC["default"]}


def test_revoke_unknown_names_the_known_keys() -> None:
    with pytest.raises(CliError, match=r"no key named 'x' \(keys: ci, default\)"):
        keys.revoke(DOC, "x")


def test_revoking_the_last_key_needs_force() -> None:
    with pytest.raises(CliError, match="last key"):
        keys.revoke({"default": "sk-1"}, "default")
    assert keys.revoke({"default": "sk-1"}, "default", force=True) == {}


def test_rotate_keeps_name_format_and_scope() -> None:
    document, key = keys.rotate(DOC, "ci")
    assert document["ci"] == {"key": key, "models": ["a/dev"]}
    assert key != DOC["ci"]["key"]
    document, key = keys.rotate(DOC, "default")
    assert document["default"] == key
    assert document["ci"] == DOC["ci"]


def test_rotate_keeps_the_scope_and_limits_of_a_key_object() -> None:
    old = {"key": "sk-old", "models": ["a/dev"], "limits": {"rate": 1.0}}
    document, key = keys.rotate({"k": old}, "k")
    assert document["k"] == {"key": key, "models": ["a/dev"], "limits": {"rate": 1.0}}


def test_rotate_unknown_key() -> None:
    with pytest.raises(CliError, match="no key named"):
        keys.rotate(DOC, "nope")


@pytest.mark.parametrize(
    ("values", "models"),
    [
        (None, None),
        ([], None),
        (["a/dev"], ["a/dev"]),
        (["a/dev,b/dev", " c/dev "], ["a/dev", "b/dev", "c/dev"]),
    ],
)
def test_split_models(values, models) -> None:
    assert keys.split_models(values) == models


def test_split_models_refuses_an_empty_scope() -> None:
    with pytest.raises(CliError, match="at least one"):
        keys.split_models([" , "])


@pytest.mark.parametrize(
    "document",
    [
        [],
        "x",
        {"k": 1},
        {"k": {"models": []}},
        {"k": {"key": "sk-1", "model": ["a/dev"]}},
        {"k": {"key": "sk-1", "Models": ["a/dev"]}},
        {"k": {"key": "sk-1", "models": "a/dev"}},
        {"k": {"key": "sk-1", "limits": {"rate": "5"}}},
    ],
)
def test_validate_refuses_what_the_proxy_could_not_read(document) -> None:
    with pytest.raises(CliError):
        keys.validate(document)


def test_validate_names_the_key_and_field() -> None:
    with pytest.raises(CliError, match='key "ci": unknown field "model"'):
        keys.validate({"ci": {"key": "sk-1", "model": ["a/dev"]}})


def test_create_with_limits_and_list_them() -> None:
    limits = keys.limits_from_options(rate=2.5, quota=100, quota_period="month")
    document, key = keys.create(DOC, "app", ["a/dev"], limits)
    assert document["app"] == {
        "key": key,
        "models": ["a/dev"],
        "limits": {"rate": 2.5, "quota": 100, "quota_period": "MONTH"},
    }
    [app] = [i for i in keys.list_keys(keys.validate(document)) if i.name == "app"]
    assert app.limits == limits
    assert app.limits_text == "2.5/s (burst 3), 100/month"
    assert keys.list_keys(DOC)[0].limits_text == "none"


def test_set_limits_replaces_and_clears() -> None:
    limits = keys.limits_from_options(quota=10)
    document = keys.set_limits(DOC, "ci", limits)
    assert document["ci"] == {
        "key": "sk-ci-0123456789",
        "models": ["a/dev"],
        "limits": {"quota": 10, "quota_period": "DAY"},
    }
    assert keys.set_limits(document, "ci", None) == DOC
    assert keys.limits_from_options() is None
