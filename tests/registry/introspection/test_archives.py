import io
import os
import stat
import struct
import tempfile
import zipfile

import pytest

from registry.introspection.archives import (
    CHUNK_SIZE,
    ArchiveError,
    ArchiveLimits,
    SafeZip,
    check_member_name,
    extracted,
)
from registry.introspection.report import FAILED, QUARANTINED
from tests.registry.introspection.sandbox import (  # noqa: F401 (fixture)
    MALICIOUS_PICKLE,
    nested_zip,
    patch_central_directory,
    sandbox,
    symlink_info,
    zip_with_raw_name,
    zip_bytes,
    zip_with_info,
)


def open_zip(data: bytes, **limits) -> SafeZip:
    return SafeZip(io.BytesIO(data), limits=ArchiveLimits(**limits))


def refused(data: bytes, **limits) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        open_zip(data, **limits)
    return caught.value


def test_a_plain_zip_opens_and_lists_its_members(sandbox):
    with open_zip(zip_bytes({"a.txt": b"hello", "dir/b.bin": b"\x00" * 10})) as archive:
        assert archive.names() == ["a.txt", "dir/b.bin"]
        assert archive.read_small(archive.get("a.txt"), 100) == b"hello"
        assert archive.listing() == [
            {"name": "a.txt", "size": 5, "compressed_size": archive.get("a.txt").compress_size},
            {"name": "dir/b.bin", "size": 10, "compressed_size": archive.get("dir/b.bin").compress_size},
        ]


@pytest.mark.parametrize("name", [
    "../evil.txt", "a/../../evil.txt", "..\\..\\evil.txt", "a\\..\\..\\evil.txt",
])
def test_members_climbing_out_are_quarantined(sandbox, name):
    error = refused(zip_bytes({"fine.txt": b"x", name: b"owned"}))
    assert error.status == QUARANTINED
    assert error.code == "unsafe_path"
    assert "escapes" in error.reason


@pytest.mark.parametrize("name, problem", [
    ("/etc/cron.d/evil", "absolute path"),
    ("\\windows\\evil.dll", "absolute path"),
    ("C:/Windows/evil.dll", "drive letter"),
    ("c:evil.dll", "drive letter"),
    ("evil\x01.txt", "control characters"),
])
def test_absolute_drive_and_control_names_are_quarantined(sandbox, name, problem):
    error = refused(zip_with_raw_name(name, b"owned"))
    assert error.status == QUARANTINED
    assert problem in error.reason


def test_check_member_name_accepts_ordinary_names():
    for name in ("model.pkl", "a/b/c.txt", "dir/", "file..name", ".hidden", "a/.../b"):
        assert check_member_name(name) is None


def test_symlink_members_are_quarantined(sandbox):
    data = zip_with_info([(symlink_info("link"), b"/etc/passwd")])
    error = refused(data)
    assert error.status == QUARANTINED
    assert "symbolic link" in error.reason


def test_device_members_are_quarantined(sandbox):
    info = zipfile.ZipInfo("fifo")
    info.create_system = 3
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    assert refused(zip_with_info([(info, b"")])).status == QUARANTINED


def test_ten_thousand_members_fail_before_zipfile_builds_them(sandbox, monkeypatch):
    data = zip_bytes({f"f{index}": b"" for index in range(10_000)}, compression=zipfile.ZIP_STORED)
    # The count comes from the end record: zipfile must not even be asked to parse the directory.
    monkeypatch.setattr(zipfile, "ZipFile", lambda *args, **kwargs: pytest.fail("zipfile was used"))
    error = refused(data)
    assert error.status == FAILED
    assert error.code == "too_many_members"
    assert "10000 members" in error.reason


def test_an_end_record_that_understates_the_count_is_still_caught(sandbox):
    data = bytearray(zip_bytes({f"f{index}": b"" for index in range(50)}, compression=zipfile.ZIP_STORED))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<HH", 1, 1)  # claim a single entry
    error = refused(bytes(data), max_members=10)
    assert error.code == "too_many_members"


def test_a_zip_bomb_is_quarantined_before_anything_is_decompressed(sandbox, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("zeros.bin", "w") as member:
            for _ in range(64):
                member.write(bytes(1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 200_000
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("member opened"))
    error = refused(data)
    assert error.status == QUARANTINED
    assert error.code == "zip_bomb"
    assert "expands" in error.reason


def test_small_members_may_compress_well(sandbox):
    with open_zip(zip_bytes({"padding.txt": b" " * 100_000})) as archive:
        assert archive.names() == ["padding.txt"]


def test_total_declared_size_is_limited(sandbox):
    error = refused(zip_bytes({"a": os.urandom(3000), "b": os.urandom(3000)}), max_total_uncompressed=5000)
    assert error.status == FAILED
    assert error.code == "too_large"


def test_duplicate_names_are_quarantined(sandbox):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("score.py", b"def predict(data): return 1")
        archive.writestr("score.py", b"import os; os.system('evil')")
    error = refused(buffer.getvalue())
    assert error.status == QUARANTINED
    assert error.code == "duplicate"


@pytest.mark.parametrize("first, second", [
    ("score.py", "SCORE.PY"),
    ("model/score.py", "Model/Score.py"),
    ("assets/Vocab.txt", "ASSETS/vocab.TXT"),
    ("a/./b.txt", "a/b.txt"),
    ("caf\u00e9.txt", "cafe\u0301.txt"),  # NFC and NFD: macOS stores both as one name
    ("stra\u00dfe.txt", "STRASSE.txt"),
    ("dir/", "DIR/"),
])
def test_names_equal_once_case_is_folded_fail(sandbox, first, second):
    error = refused(zip_bytes({first: b"one", second: b"two"}))
    assert error.status == FAILED
    assert error.code == "case_collision"
    assert repr(first) in error.reason and repr(second) in error.reason
    assert "overwrite" in error.reason


def test_a_file_named_like_a_folder_once_case_is_folded_fails(sandbox):
    error = refused(zip_bytes({"data/train.csv": b"x", "DATA": b"a file"}))
    assert error.status == FAILED
    assert error.code == "case_collision"
    error = refused(zip_bytes({"DATA": b"a file", "data/train.csv": b"x"}))
    assert error.code == "case_collision"


def test_names_that_differ_once_case_is_folded_are_fine(sandbox):
    members = {"dir/": b"", "dir/a.txt": b"", "DIR2/a.txt": b"", "Dir/b.txt": b"", "model.pkl": b"",
               "model.pkl.bak": b"", "a/b/c": b"", "A/b/d": b""}
    with open_zip(zip_bytes(members)) as archive:
        assert len(archive.names()) == len(members) - 1


def test_overlapping_entries_are_quarantined(sandbox):
    data = zip_bytes({"a.bin": os.urandom(1000), "b.bin": os.urandom(1000)}, compression=zipfile.ZIP_STORED)

    def point_everything_at_the_first_entry(record):
        record[42:46] = struct.pack("<I", 0)

    error = refused(patch_central_directory(data, point_everything_at_the_first_entry))
    assert error.status == QUARANTINED
    assert error.code == "overlap"


def test_data_prepended_to_a_zip_is_quarantined(sandbox):
    error = refused(MALICIOUS_PICKLE + zip_bytes({"a.txt": b"x"}))
    assert error.status == QUARANTINED
    assert error.code == "polyglot"


def test_encrypted_members_fail(sandbox):
    def set_encrypted(record):
        flags = struct.unpack("<H", record[8:10])[0]
        record[8:10] = struct.pack("<H", flags | 1)

    error = refused(patch_central_directory(zip_bytes({"a.txt": b"secret"}), set_encrypted))
    assert error.status == FAILED
    assert error.code == "encrypted"


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 100])
def test_garbage_fails(sandbox, data):
    assert refused(data).status == FAILED


def test_a_member_larger_than_its_header_says_is_never_read_past_the_header(sandbox):
    data = zip_bytes({"big.bin": bytes(4 * 1024 * 1024)})

    def shrink_declared_size(record):
        record[24:28] = struct.pack("<I", 100)

    with open_zip(patch_central_directory(data, shrink_declared_size)) as archive:
        info = archive.get("big.bin")
        assert info.file_size == 100
        received = []
        with pytest.raises(ArchiveError) as caught:
            for chunk in archive.iter_chunks(info):
                received.append(chunk)
        assert caught.value.code == "corrupt"
        assert sum(map(len, received)) <= 100


def test_members_are_read_in_bounded_chunks(sandbox):
    payload = os.urandom(3 * CHUNK_SIZE + 17)
    with open_zip(zip_bytes({"weights.bin": payload})) as archive:
        chunks = list(archive.iter_chunks(archive.get("weights.bin")))
        assert max(map(len, chunks)) <= CHUNK_SIZE
        assert b"".join(chunks) == payload
        with pytest.raises(ArchiveError):
            archive.read_small(archive.get("weights.bin"), 1000)


def test_nested_zips_are_opened_up_to_the_depth_limit(sandbox):
    data = nested_zip(2, {"inner.txt": b"deep"})
    with open_zip(data, max_depth=2) as outer:
        with outer.open_nested(outer.get("level1.zip")) as middle:
            with middle.open_nested(middle.get("level0.zip")) as inner:
                assert inner.names() == ["inner.txt"]
    with open_zip(data, max_depth=1) as outer:
        with outer.open_nested(outer.get("level1.zip")) as middle:
            with pytest.raises(ArchiveError) as caught:
                with middle.open_nested(middle.get("level0.zip")):
                    pass
    assert caught.value.code == "too_deep"
    assert caught.value.status == FAILED


def test_nested_archives_share_the_size_budget(sandbox):
    inner = zip_bytes({"payload": os.urandom(4000)}, compression=zipfile.ZIP_STORED)
    with open_zip(zip_bytes({"inner.zip": inner}, compression=zipfile.ZIP_STORED),
                  max_total_uncompressed=len(inner) + 1000) as outer:
        with pytest.raises(ArchiveError) as caught:
            with outer.open_nested(outer.get("inner.zip")):
                pass
    assert caught.value.code == "too_large"


def test_extraction_stays_inside_a_temporary_directory(sandbox):
    with open_zip(zip_bytes({"a/b.txt": b"hello", "c.txt": b"world"})) as archive:
        with extracted(archive) as directory:
            assert directory.startswith(str(sandbox.temp))
            with open(os.path.join(directory, "a", "b.txt"), "rb") as handle:
                assert handle.read() == b"hello"
        assert not os.path.exists(directory)


def test_extraction_refuses_a_directory_outside_the_temporary_area(sandbox, tmp_path):
    with open_zip(zip_bytes({"a.txt": b"x"})) as archive:
        with pytest.raises(ValueError):
            archive.extract_to(str(sandbox.cwd))
    assert list(sandbox.cwd.iterdir()) == []


def test_extraction_of_a_hostile_zip_never_starts(sandbox):
    evil = f"evil-{sandbox.token}.txt"
    sandbox.sentinels += [os.path.join(str(sandbox.temp), "..", evil), os.path.join(tempfile.gettempdir(), evil),
                          os.path.join("/tmp", evil)]
    with pytest.raises(ArchiveError):
        with extracted(open_zip(zip_bytes({f"../{evil}": b"owned"}))):
            pass
