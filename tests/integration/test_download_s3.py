"""InfinityBlueDownloadVideoOperator writing to s3:// through Airflow's ObjectStoragePath, against a real
S3 API (moto's server) on 127.0.0.1.

The way a user reaches S3: the Amazon provider (with s3fs) serves the ``s3`` scheme, and an ``aws``
connection, named by ``destination_conn_id``, says where S3 is (``endpoint_url`` in its extra, as
for MinIO or any S3-compatible store). Credentials come from the environment, and are fake.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_provider_infinityblue.download import InfinityBlueDownloadError, InfinityBlueDownloadRefusedError
from airflow_provider_infinityblue.emulator.sample_video import SAMPLE_VIDEO_PATH
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueDownloadVideoOperator
from airflow_provider_infinityblue.retry import RetryPolicy
from airflow_provider_infinityblue.testing import running_emulator
from tests.integration.video_servers import CuttingProxy
from tests.unit.fakes import task_context

SAMPLE = Path(SAMPLE_VIDEO_PATH).read_bytes()
REGION = "us-east-1"


@pytest.fixture
def video_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of a video finished on the emulator, found with the real hook."""
    # The fixed sample, so that the stored object can be checked byte for byte against a file known in advance.
    with running_emulator(generation_seconds=0.2, video="sample") as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection())
        with InfinityBlueHook() as hook:
            generation_id = hook.submit_generation(GenerationRequest(prompt="A kite over dunes", model="veo_3_1"))
            url = hook.wait_for_generation(generation_id, poll_interval=0.05, timeout=30).video_url
        assert url is not None
        yield url


def operator(
    url: str, destination: str, conn_id: str, *, max_attempts: int = 1, **kwargs
) -> InfinityBlueDownloadVideoOperator:
    op = InfinityBlueDownloadVideoOperator(
        task_id="download", url=url, destination=destination, destination_conn_id=conn_id, **kwargs
    )
    op.download_retry_policy = RetryPolicy(max_attempts=max_attempts, initial_backoff=0.01, max_backoff=0.02)
    return op


def keys(client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_the_video_lands_in_the_bucket(s3, video_url: str, tmp_path: Path, monkeypatch) -> None:
    client, bucket, conn_id = s3
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    destination = f"s3://{bucket}/videos/2026-01-01/kite.mp4"
    context = task_context()

    result = operator(video_url, destination, conn_id, chunk_bytes=8192).execute(context)

    assert result == destination
    stored = client.get_object(Bucket=bucket, Key="videos/2026-01-01/kite.mp4")["Body"].read()
    assert stored == SAMPLE
    assert context["ti"].xcom == {"size_bytes": len(SAMPLE), "sha256": hashlib.sha256(stored).hexdigest()}
    assert keys(client, bucket) == ["videos/2026-01-01/kite.mp4"]
    assert list(tmp_path.iterdir()) == []  # the local temporary copy is gone


def test_a_download_cut_short_leaves_no_object(s3, video_url: str, tmp_path: Path, monkeypatch) -> None:
    client, bucket, conn_id = s3
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    target = urlsplit(video_url)
    assert target.hostname is not None
    assert target.port is not None
    with CuttingProxy((target.hostname, target.port), cut_after=12_000) as proxy:
        cut = operator(
            target._replace(netloc=proxy.address).geturl(),
            f"s3://{bucket}/videos/kite.mp4",
            conn_id,
            allowed_hosts=[proxy.address],  # another port than the connection's: allowed for this test
        )
        with pytest.raises(InfinityBlueDownloadError, match="Could not download"):
            cut.execute(task_context())
    assert keys(client, bucket) == []
    assert list(tmp_path.iterdir()) == []


def test_a_refused_answer_leaves_no_object(s3, video_url: str) -> None:
    client, bucket, conn_id = s3
    with pytest.raises(InfinityBlueDownloadRefusedError, match="more than max_bytes=1000"):
        operator(video_url, f"s3://{bucket}/videos/kite.mp4", conn_id, max_bytes=1000).execute(task_context())
    assert keys(client, bucket) == []


def test_a_missing_bucket_is_an_infinityblue_error(s3, video_url: str) -> None:
    _, _, conn_id = s3
    with pytest.raises(InfinityBlueDownloadError, match=r"Could not save the video to s3://no-such-bucket-") as failed:
        operator(video_url, f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/kite.mp4", conn_id).execute(task_context())
    assert "bucket does not exist" in str(failed.value).lower()


def test_a_bucket_alone_names_no_object(s3, video_url: str) -> None:
    client, bucket, conn_id = s3
    with pytest.raises(InfinityBlueDownloadRefusedError, match="names no file"):
        operator(video_url, f"s3://{bucket}", conn_id).execute(task_context())
    assert keys(client, bucket) == []


def test_a_stale_upload_file_left_by_a_killed_worker_is_removed(
    s3, video_url: str, tmp_path: Path, monkeypatch
) -> None:
    client, bucket, conn_id = s3
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    stale = tmp_path / "infinityblue-video-0123456789ab.part"  # unlocked: its worker is gone
    stale.write_bytes(b"left by a killed worker")
    unrelated = tmp_path / "infinityblue-video-notours.part"
    unrelated.write_bytes(b"not a name this provider writes")
    operator(video_url, f"s3://{bucket}/clip.mp4", conn_id).execute(task_context())
    assert keys(client, bucket) == ["clip.mp4"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [unrelated.name]
