"""Reading every answer shape the gateway is known to send, and validating requests."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueResponseError,
    InfinityBlueValidationError,
)
from airflow_provider_infinityblue.models import (
    Generation,
    GenerationRequest,
    GenerationState,
    encode_image,
)


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class TestStatusMapping:
    @pytest.mark.parametrize(
        ("status", "state"),
        [
            ("queued", GenerationState.PENDING),
            ("PENDING", GenerationState.PENDING),
            ("Submitted", GenerationState.PENDING),
            ("NOT_START", GenerationState.PENDING),
            ("not start", GenerationState.PENDING),
            ("in_progress", GenerationState.RUNNING),
            ("IN_PROGRESS", GenerationState.RUNNING),
            ("in-progress", GenerationState.RUNNING),
            ("Processing", GenerationState.RUNNING),
            ("running", GenerationState.RUNNING),
            ("completed", GenerationState.SUCCEEDED),
            ("SUCCEEDED", GenerationState.SUCCEEDED),
            ("Success", GenerationState.SUCCEEDED),
            ("failed", GenerationState.FAILED),
            ("FAILURE", GenerationState.FAILED),
            ("error", GenerationState.FAILED),
            ("cancelled", GenerationState.CANCELLED),
            ("CANCELED", GenerationState.CANCELLED),
            (" completed ", GenerationState.SUCCEEDED),
        ],
    )
    def test_every_known_spelling(self, status: str, state: GenerationState) -> None:
        assert GenerationState.from_status(status) is state

    @pytest.mark.parametrize("status", ["unknown", "rendering_frames", "", None, 3])
    def test_anything_else_is_not_finished(self, status: object) -> None:
        state = GenerationState.from_status(status)
        assert state is GenerationState.UNKNOWN
        assert not state.is_finished

    def test_finished_states(self) -> None:
        finished = {s for s in GenerationState if s.is_finished}
        assert finished == {GenerationState.SUCCEEDED, GenerationState.FAILED, GenerationState.CANCELLED}


class TestGenerationParsing:
    def test_documented_shape(self) -> None:
        payload = {
            "task_id": "abcd1234efgh",
            "status": "completed",
            "url": "https://cdn.example/v.mp4",
            "format": "mp4",
            "metadata": {"duration": 5},
            "progress": 100,
            "billing": {"credits": 3},
        }
        generation = Generation.from_payload(payload)
        assert generation.id == "abcd1234efgh"
        assert generation.state is GenerationState.SUCCEEDED
        assert generation.status == "completed"
        assert generation.video_url == "https://cdn.example/v.mp4"
        assert generation.video_format == "mp4"
        assert generation.progress == 100
        assert generation.raw["billing"] == {"credits": 3}  # extra fields are kept

    def test_wrapped_shape_is_unwrapped(self) -> None:
        payload = {
            "code": "success",
            "message": "",
            "data": {"id": "t-9", "status": "IN_PROGRESS", "progress": "40%", "vendor": "kling"},
        }
        generation = Generation.from_payload(payload)
        assert (generation.id, generation.state, generation.progress) == ("t-9", GenerationState.RUNNING, 40)
        assert generation.raw["vendor"] == "kling"

    def test_wrapped_answer_without_data_is_an_error(self) -> None:
        with pytest.raises(InfinityBlueResponseError, match=r"task_not_exist.*no such task"):
            Generation.from_payload({"code": "task_not_exist", "message": "no such task", "data": None})

    @pytest.mark.parametrize("id_field", ["task_id", "id"])
    def test_id_field_spellings(self, id_field: str) -> None:
        assert Generation.from_payload({id_field: "x1", "status": "queued"}).id == "x1"

    def test_numeric_id_becomes_text(self) -> None:
        assert Generation.from_payload({"id": 42, "status": "queued"}).id == "42"

    def test_missing_id_uses_the_one_asked_for(self) -> None:
        assert Generation.from_payload({"status": "queued"}, generation_id="asked").id == "asked"

    def test_missing_id_without_fallback_is_an_error(self) -> None:
        with pytest.raises(InfinityBlueResponseError, match="no task id"):
            Generation.from_payload({"status": "queued"})

    @pytest.mark.parametrize(
        "payload",
        [
            {"url": "https://cdn/u.mp4"},
            {"video_url": "https://cdn/u.mp4"},
            {"result_url": "https://cdn/u.mp4"},
            {"metadata": {"url": "https://cdn/u.mp4"}},
            {"url": "", "video_url": "https://cdn/u.mp4"},
        ],
    )
    def test_every_url_field(self, payload: dict) -> None:
        generation = Generation.from_payload({"id": "t", "status": "completed", **payload})
        assert generation.video_url == "https://cdn/u.mp4"

    @pytest.mark.parametrize(
        ("progress", "expected"),
        [(30, 30), ("30%", 30), (" 55 % ", 55), ("70", 70), (12.6, 13), (150, 100), (None, None), ("soon", None)],
    )
    def test_progress_forms(self, progress: object, expected: int | None) -> None:
        assert Generation.from_payload({"id": "t", "status": "running", "progress": progress}).progress == expected

    @pytest.mark.parametrize(
        ("payload", "code", "message"),
        [
            ({"error": {"code": "content_policy", "message": "Prompt refused"}}, "content_policy", "Prompt refused"),
            ({"error": "GPU exploded"}, None, "GPU exploded"),
            ({"fail_reason": "Image could not be read"}, None, "Image could not be read"),
            ({}, None, None),
        ],
    )
    def test_error_forms(self, payload: dict, code: str | None, message: str | None) -> None:
        generation = Generation.from_payload({"id": "t", "status": "failed", **payload})
        assert (generation.error_code, generation.error_message) == (code, message)

    @pytest.mark.parametrize("payload", [["a list"], "text", None])
    def test_non_object_answers_are_errors(self, payload: object) -> None:
        with pytest.raises(InfinityBlueResponseError, match="not a JSON object"):
            Generation.from_payload(payload)


class TestGenerationRequest:
    def test_unset_fields_are_not_sent(self) -> None:
        body = GenerationRequest(prompt="A fox", model="kling-v2-5-turbo").to_body()
        assert body == {"prompt": "A fox", "model": "kling-v2-5-turbo"}

    def test_every_field_is_sent(self) -> None:
        request = GenerationRequest(
            prompt="A fox",
            model="veo_3_1",
            image="https://example.com/fox.jpg",
            duration=5,
            width=1280,
            height=720,
            fps=30,
            seed=0,
            n=1,
            response_format="url",
            user="team-a",
            metadata={"negative_prompt": "blur", "style": {"tone": "warm"}},
        )
        assert request.to_body() == {
            "prompt": "A fox",
            "model": "veo_3_1",
            "image": "https://example.com/fox.jpg",
            "duration": 5,
            "width": 1280,
            "height": 720,
            "fps": 30,
            "seed": 0,
            "n": 1,
            "response_format": "url",
            "user": "team-a",
            "metadata": {"negative_prompt": "blur", "style": {"tone": "warm"}},
        }

    def test_templated_numbers_are_accepted(self) -> None:
        request = GenerationRequest(
            prompt="p", model="m", duration="7.5", width="1280", height=" 720 ", fps="24", seed="-3", n="2"
        )
        assert (request.duration, request.width, request.height, request.fps, request.seed, request.n) == (
            7.5,
            1280,
            720,
            24,
            -3,
            2,
        )

    @pytest.mark.parametrize(
        ("kwargs", "field", "fragment"),
        [
            ({"prompt": ""}, "prompt", "non-empty string"),
            ({"prompt": "   "}, "prompt", "non-empty string"),
            ({"prompt": None}, "prompt", "non-empty string"),
            ({"model": ""}, "model", "non-empty string"),
            ({"model": 3}, "model", "non-empty string"),
            ({"duration": 0}, "duration", "positive number"),
            ({"duration": -5}, "duration", "positive number"),
            ({"duration": "five"}, "duration", "a number"),
            ({"duration": float("inf")}, "duration", "a number"),
            ({"duration": True}, "duration", "a number"),
            ({"width": 0}, "width", "positive integer"),
            ({"width": 12.5}, "width", "an integer"),
            ({"height": -720}, "height", "positive integer"),
            ({"height": "1.5"}, "height", "an integer"),
            ({"fps": 0}, "fps", "positive integer"),
            ({"n": 0}, "n", "at least 1"),
            ({"seed": 1.5}, "seed", "an integer"),
            ({"seed": "abc"}, "seed", "an integer"),
            ({"metadata": "{'style': 'noir'}"}, "metadata", "must be a dict"),
            ({"metadata": ["style"]}, "metadata", "must be a dict"),
            ({"user": 7}, "user", "must be a string"),
            ({"image": 7}, "image", "must be a string"),
            ({"image": " "}, "image", "must not be empty"),
        ],
    )
    def test_invalid_values_name_the_field(self, kwargs: dict, field: str, fragment: str) -> None:
        values = {"prompt": "A fox", "model": "kling-v2-5-turbo", **kwargs}
        with pytest.raises(InfinityBlueValidationError) as caught:
            GenerationRequest(**values)
        assert caught.value.field == field
        assert repr(field) in str(caught.value)
        assert fragment in str(caught.value)

    def test_repr_shortens_a_data_uri(self) -> None:
        data_uri = "data:image/png;base64," + "A" * 50_000
        text = repr(GenerationRequest(prompt="p", model="m", image=data_uri))
        assert "AAAAAAAAAA" not in text
        assert "image/png data URI, 50000 base64 chars" in text
        assert len(text) < 200


class TestImages:
    def test_urls_are_sent_as_given(self) -> None:
        assert encode_image("https://example.com/a.jpg") == "https://example.com/a.jpg"
        assert encode_image("http://example.com/a.jpg") == "http://example.com/a.jpg"

    def test_data_uri_is_sent_as_given(self) -> None:
        uri = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
        assert encode_image(uri) == uri

    def test_non_image_data_uri_is_refused(self) -> None:
        with pytest.raises(InfinityBlueValidationError, match="base64 image"):
            encode_image("data:text/plain;base64,aGVsbG8=")

    def test_oversized_data_uri_is_refused(self) -> None:
        with pytest.raises(InfinityBlueValidationError, match="more than 100 bytes"):
            encode_image("data:image/png;base64," + "A" * 400, max_bytes=100)

    @pytest.mark.parametrize("url", ["s3://bucket/a.png", "ftp://host/a.png", "file:///tmp/a.png"])
    def test_other_url_schemes_are_refused(self, url: str) -> None:
        with pytest.raises(InfinityBlueValidationError, match=r"http\(s\) URL, a data URI or a local file path"):
            encode_image(url)

    def test_local_png_becomes_a_data_uri(self, tmp_path) -> None:
        path = tmp_path / "frame.png"
        path.write_bytes(tiny_png())
        encoded = encode_image(str(path))
        assert encoded.startswith("data:image/png;base64,")
        assert base64.b64decode(encoded.split(",", 1)[1]) == tiny_png()

    def test_mime_type_comes_from_content_not_name(self, tmp_path) -> None:
        path = tmp_path / "photo.png"
        path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)  # a JPEG with the wrong extension
        assert encode_image(str(path)).startswith("data:image/jpeg;base64,")

    def test_webp_is_recognised(self, tmp_path) -> None:
        path = tmp_path / "still"
        path.write_bytes(b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32)
        assert encode_image(str(path)).startswith("data:image/webp;base64,")

    def test_missing_file(self, tmp_path) -> None:
        with pytest.raises(InfinityBlueValidationError, match="does not exist"):
            encode_image(str(tmp_path / "nope.png"))

    def test_directory(self, tmp_path) -> None:
        with pytest.raises(InfinityBlueValidationError, match="is not a file"):
            encode_image(str(tmp_path))

    def test_not_an_image(self, tmp_path) -> None:
        path = tmp_path / "notes.png"
        path.write_text("just text")
        with pytest.raises(InfinityBlueValidationError, match="is not a PNG, JPEG"):
            encode_image(str(path))

    def test_file_over_the_limit(self, tmp_path) -> None:
        path = tmp_path / "big.png"
        path.write_bytes(tiny_png() + b"\x00" * 2000)
        with pytest.raises(InfinityBlueValidationError, match="over the 1000-byte limit"):
            encode_image(str(path), max_bytes=1000)

    def test_to_body_reads_the_file(self, tmp_path) -> None:
        path = tmp_path / "frame.png"
        path.write_bytes(tiny_png())
        body = GenerationRequest(prompt="p", model="m", image=str(path)).to_body()
        assert body["image"].startswith("data:image/png;base64,")
