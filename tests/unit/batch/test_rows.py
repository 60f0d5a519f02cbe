"""Reading and validating a batch's rows: lists, JSONL and CSV, every problem with its row and line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.batch.rows import read_rows, validate_rows
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError

if TYPE_CHECKING:
    from pathlib import Path


def test_jsonl_rows_are_numbered_by_row_and_line_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "A fox"}\n\n{"prompt": "An owl", "key": "owl"}\nnot json\n[1, 2]\n')
    result = validate_rows(read_rows(requests_path=str(path)))
    assert [(row.index, row.key, row.request.prompt) for row in result.valid] == [
        (0, "0", "A fox"),
        (1, "owl", "An owl"),
    ]
    assert [bad.describe() for bad in result.invalid] == [
        "row 2 (line 4): not JSON: Expecting value at column 1",
        "row 3 (line 5): a line must hold a JSON object, got list",
    ]


def test_csv_cells_are_strings_and_empty_cells_take_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text(
        'key,prompt,duration,seed,metadata\na,A fox,,7,"{""style"": ""noir""}"\nb,An owl,8,,\nc,A cat,1,2,3,4\n'
    )
    result = validate_rows(read_rows(requests_path=str(path)), defaults={"duration": 5})
    first, second = result.valid
    assert (first.request.duration, first.request.seed, first.request.metadata) == (5, 7, {"style": "noir"})
    assert (second.request.duration, second.request.seed) == (8, None)
    assert result.invalid[0].describe() == "row 2 (line 4): 6 cells where the header has 5 columns"


def test_the_same_request_has_the_same_fingerprint_whichever_file_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("prompt,duration\nA fox,5\n")
    (tmp_path / "b.jsonl").write_text('{"prompt": "A fox", "duration": 5}\n')
    from_csv = validate_rows(read_rows(requests_path=str(tmp_path / "a.csv"))).valid[0]
    from_jsonl = validate_rows(read_rows(requests_path=str(tmp_path / "b.jsonl"))).valid[0]
    assert from_csv.fingerprint == from_jsonl.fingerprint


def test_every_kind_of_bad_row_is_reported_together() -> None:
    result = validate_rows(
        read_rows(
            [
                {"prompt": "A fox", "key": "k"},
                {"prompt": "An owl", "key": "k"},
                {"key": "no-prompt"},
                {"prompt": "A cat", "colour": "blue"},
                {"prompt": "A dog", "metadata": "noir"},
                "A horse",
            ]
        )
    )
    assert [bad.describe() for bad in result.invalid] == [
        "row 1: key 'k' is already the key of row 0",
        "row 2: 'prompt' is required (in the row, or in defaults)",
        "row 3: unknown field 'colour' (a row may set prompt, model, image, duration, width, height, fps, seed, "
        "metadata, user, key)",
        "row 4: 'metadata' must be a dict, got str (a templated dict renders to a string unless the DAG sets "
        "render_template_as_native_obj)",
        "row 5: a row must be a dict, got str",
    ]
    assert len(result.valid) == 1


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"requests": [{"prompt": "x"}], "requests_path": "p.jsonl"}, "exactly one of"),
        ({"requests": "[{'prompt': 'x'}]"}, "render_template_as_native_obj=True"),
        ({"requests_path": "prompts.parquet"}, "must name a .jsonl, .ndjson or .csv file"),
        ({"requests_path": "/no/such/prompts.jsonl"}, "Cannot open /no/such/prompts.jsonl"),
    ],
)
def test_an_unusable_input_is_a_configuration_error(arguments, problem) -> None:
    with pytest.raises(InfinityBlueConfigurationError, match=problem):
        list(read_rows(**arguments))


def test_defaults_may_only_set_request_fields() -> None:
    with pytest.raises(InfinityBlueConfigurationError, match="not key"):
        validate_rows(read_rows([{"prompt": "A fox"}]), defaults={"key": "x"})
