"""Reading the ``infinityblue`` connection: base URL, key, extras, and keeping the key secret."""

from __future__ import annotations

import json

import pytest

from airflow_provider_infinityblue import get_provider_info
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from tests.conftest import FAKE_API_KEY, set_connection


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("http://127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("https://gw.example.com/prefix", None, "https://gw.example.com/prefix"),
        ("https://gw.example.com/prefix/", None, "https://gw.example.com/prefix"),
        ("gw.example.com", None, "https://gw.example.com"),
        ("gw.example.com", 8443, "https://gw.example.com:8443"),
        ("http://127.0.0.1", 8089, "http://127.0.0.1:8089"),
        ("http://127.0.0.1:9000", 8089, "http://127.0.0.1:9000"),
        ("", None, "https://api.getinfinityblue.com"),
        (None, None, "https://api.getinfinityblue.com"),
    ],
)
def test_base_url_from_json_connection(monkeypatch, host, port, expected) -> None:
    fields = {"password": FAKE_API_KEY, "port": port}
    if host is not None:
        fields["host"] = host
    set_connection(monkeypatch, **fields)
    assert InfinityBlueHook().settings.base_url == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"infinityblue://:{FAKE_API_KEY}@gw.example.com", "https://gw.example.com"),
        (f"infinityblue://:{FAKE_API_KEY}@gw.example.com:8443/prefix", "https://gw.example.com:8443/prefix"),
        (f"infinityblue://:{FAKE_API_KEY}@http%3A%2F%2F127.0.0.1%3A8089", "http://127.0.0.1:8089"),
        (f"infinityblue://:{FAKE_API_KEY}@", "https://api.getinfinityblue.com"),
    ],
)
def test_base_url_from_uri_connection(monkeypatch, uri, expected) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", uri)
    settings = InfinityBlueHook().settings
    assert settings.base_url == expected
    assert settings.api_key == FAKE_API_KEY


def test_named_connection(monkeypatch) -> None:
    set_connection(monkeypatch, "video_prod", host="https://gw.example.com", password=FAKE_API_KEY)
    hook = InfinityBlueHook(infinityblue_conn_id="video_prod")
    assert hook.settings.conn_id == "video_prod"
    assert hook.settings.base_url == "https://gw.example.com"


def test_missing_key_names_the_connection(monkeypatch) -> None:
    set_connection(monkeypatch, "video_prod", host="https://gw.example.com")
    with pytest.raises(InfinityBlueConfigurationError, match=r"'video_prod' has no InfinityBlue API key.*password"):
        _ = InfinityBlueHook("video_prod").settings


def test_host_that_is_not_http(monkeypatch) -> None:
    set_connection(monkeypatch, host="ftp://files.example.com", password=FAKE_API_KEY)
    with pytest.raises(InfinityBlueConfigurationError, match="not an http"):
        _ = InfinityBlueHook().settings


def test_extras_tune_timeouts_retries_and_image_limit(monkeypatch) -> None:
    extra = {
        "connect_timeout": "2.5",
        "read_timeout": 30,
        "max_attempts": "7",
        "initial_backoff": 0.5,
        "max_backoff": 8,
        "max_retry_after": 60,
        "max_image_mb": 5,
    }
    set_connection(monkeypatch, host="https://gw.example.com", password=FAKE_API_KEY, extra=json.dumps(extra))
    settings = InfinityBlueHook().settings
    assert (settings.connect_timeout, settings.read_timeout) == (2.5, 30)
    assert (settings.retry.max_attempts, settings.retry.initial_backoff, settings.retry.max_backoff) == (7, 0.5, 8)
    assert settings.retry.max_retry_after == 60
    assert settings.max_image_bytes == 5 * 1024 * 1024


def test_extras_from_a_uri_query(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INFINITYBLUE_DEFAULT",
        f"infinityblue://:{FAKE_API_KEY}@gw.example.com?max_attempts=2&read_timeout=9",
    )
    settings = InfinityBlueHook().settings
    assert (settings.retry.max_attempts, settings.read_timeout) == (2, 9)


def test_defaults_without_extras(monkeypatch) -> None:
    set_connection(monkeypatch, password=FAKE_API_KEY)
    settings = InfinityBlueHook().settings
    assert (settings.connect_timeout, settings.read_timeout, settings.retry.max_attempts) == (10, 60, 5)
    assert settings.max_image_bytes == 20 * 1024 * 1024


CONN_FIELDS = get_provider_info()["connection-types"][0]["conn-fields"]


@pytest.mark.parametrize("empty", [None, ""], ids=["null", "empty-string"])
def test_every_extra_left_empty_in_the_form_means_its_default(monkeypatch, empty) -> None:
    """The UI saves each field it shows, an empty one as null (Airflow 3.2+) or "" (3.0 and 3.1)."""
    set_connection(monkeypatch, password=FAKE_API_KEY)
    defaults = InfinityBlueHook().settings
    extra = {name: empty for name in CONN_FIELDS}
    set_connection(monkeypatch, password=FAKE_API_KEY, extra=json.dumps(extra))
    assert InfinityBlueHook().settings == defaults
    prefixed = {f"extra__infinityblue__{name}": empty for name in CONN_FIELDS}
    set_connection(monkeypatch, password=FAKE_API_KEY, extra=json.dumps(prefixed))
    assert InfinityBlueHook().settings == defaults


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"max_attempts": "lots"}, "'max_attempts' must be an integer"),
        ({"max_attempts": 2.5}, "'max_attempts' must be an integer"),
        ({"max_attempts": 0}, "'max_attempts' must be at least 1"),
        ({"read_timeout": "fast"}, "'read_timeout' must be a number"),
        ({"connect_timeout": -1}, "'connect_timeout' must be at least"),
    ],
)
def test_bad_extras_are_named(monkeypatch, extra, fragment) -> None:
    set_connection(monkeypatch, password=FAKE_API_KEY, extra=json.dumps(extra))
    with pytest.raises(InfinityBlueConfigurationError, match=fragment):
        _ = InfinityBlueHook().settings


def test_key_is_registered_with_the_secrets_masker(monkeypatch) -> None:
    from airflow.providers.common.compat.sdk import redact

    set_connection(monkeypatch, password=FAKE_API_KEY)
    _ = InfinityBlueHook().settings
    assert FAKE_API_KEY not in str(redact(f"Authorization: Bearer {FAKE_API_KEY}"))


def test_key_is_not_in_any_repr(monkeypatch) -> None:
    set_connection(monkeypatch, host="https://gw.example.com", password=FAKE_API_KEY)
    hook = InfinityBlueHook()
    session = hook.get_conn()
    for text in (repr(hook), repr(hook.settings), str(hook.settings), repr(session), repr(hook.settings.retry)):
        assert FAKE_API_KEY not in text
    assert "gw.example.com" in repr(hook.settings)


def test_ui_field_behaviour_matches_the_provider_info() -> None:
    behaviour = InfinityBlueHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"schema", "login"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key", "port": "Port (optional)"}
    assert behaviour["placeholders"]["host"] == "https://api.getinfinityblue.com"


def _wtforms_form(data: dict[str, str]):
    """The WTForms form Airflow 3.0 and 3.1 build from the hook's widgets, given what a person typed."""
    from werkzeug.datastructures import MultiDict
    from wtforms import Form

    form_class = type("InfinityBlueConnectionForm", (Form,), InfinityBlueHook.get_connection_form_widgets())
    return form_class(formdata=MultiDict(data))


def test_every_wtforms_field_may_be_left_empty() -> None:
    form = _wtforms_form({name: "" for name in CONN_FIELDS})
    assert form.validate(), form.errors
    assert set(form.data) == set(CONN_FIELDS)
    # An unchecked box is False, the same as the extra left out.
    assert {name: value for name, value in form.data.items() if value not in (None, "", False)} == {}


def test_wtforms_fields_still_check_what_is_typed() -> None:
    form = _wtforms_form({"max_attempts": "lots", "default_model": "kling-v2-1", "read_timeout": "2.5"})
    assert not form.validate()
    assert set(form.errors) == {"max_attempts"}
    assert (form.default_model.data, form.read_timeout.data) == ("kling-v2-1", "2.5")


def test_wtforms_fields_carry_the_labels_and_descriptions() -> None:
    widgets = InfinityBlueHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    form = _wtforms_form({})
    for name, spec in CONN_FIELDS.items():
        field = form[name]
        assert field.label.text == spec["label"]
        assert field.description.startswith(spec["description"])
    assert form.default_model.description.endswith("Empty: kling-v2-5-turbo.")
    assert "One of 'verify' or 'skip-insecure'." in form.tls_verification.description
