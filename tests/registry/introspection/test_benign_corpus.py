"""No false alarms: real model files written by the libraries themselves are all `ready`."""

import io

import pytest

from registry.introspection.dispatch import introspect
from registry.introspection.report import READY
from tests.corpus import benign
from tests.registry.introspection import benign_corpus

OBJECTS = list(benign_corpus.objects())


@pytest.mark.parametrize("name, obj", OBJECTS, ids=[name for name, _ in OBJECTS])
def test_every_serialization_of_a_real_model_is_ready(name, obj):
    problems = []
    for suffix, kind, data in benign_corpus.serialized(obj):
        report = introspect(kind, io.BytesIO(data), size=len(data))
        if report.status != READY:
            problems.append(f"{name}.{suffix}: {report.status}: {report.message}")
    assert not problems, "\n".join(problems)


def test_the_corpus_covers_the_libraries_and_compressions_the_issue_names():
    names = {name for name, _ in OBJECTS}
    assert {"frame_all", "frame_cat_only", "columntransformer", "xgb_clf", "lgbm_clf", "csr", "arr_struct",
            "arr_obj"} <= names
    assert {0, 1, 3, 9, ("xz", 3), ("gzip", 3)} <= {c if isinstance(c, int) else c for c in benign_corpus.COMPRESSIONS}


@pytest.mark.parametrize("name, kind, data", list(benign_corpus.torch_files()),
                         ids=[name for name, _, _ in benign_corpus.torch_files()])
def test_every_pytorch_save_is_ready(name, kind, data):
    report = introspect(kind, io.BytesIO(data), size=len(data))

    assert report.status == READY, report.message


# The bench's own benign families (tests/corpus/benign.py), which wrap files as users do.
SAMPLES = benign.benign_corpus(families=("numpy", "sklearn", "pandas", "torch"))


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.name for sample in SAMPLES])
def test_every_benign_sample_of_the_bench_is_ready(sample):
    report = introspect(sample.kind, io.BytesIO(sample.data), size=len(sample.data))

    assert report.status == READY, f"{sample.name}: {report.message}"
