"""Comparing two versions (registry/compare.py): pure functions, mostly without a database."""

import pytest

from registry import selectors, services
from registry.compare import (
    MISSING,
    compare_versions,
    diff_mapping,
    flatten,
    signature_diff,
    snapshot,
)


def field(name, dtype="float32", shape=(-1, 4), profile=None):
    item = {"name": name, "dtype": dtype, "shape": list(shape)}
    if profile:
        item["profile"] = profile
    return item


def sig(inputs=(), outputs=()):
    return {"inputs": list(inputs), "outputs": list(outputs)}


def only(changes):
    assert len(changes) == 1, changes
    return changes[0]


# --- signatures -------------------------------------------------------------------------

def test_identical_signatures_have_no_changes():
    signature = sig([field("x")], [field("y", "int64", [-1])])
    assert signature_diff(signature, signature) == []


def test_no_signature_on_either_side_has_no_changes():
    assert signature_diff({}, None) == []


def test_removed_input_is_breaking():
    change = only(signature_diff(sig([field("x"), field("age")]), sig([field("x")])))
    assert (change.part, change.name, change.change, change.breaking) == ("inputs", "age", "removed", True)


def test_retyped_input_is_breaking():
    change = only(signature_diff(sig([field("x", "float32")]), sig([field("x", "float64")])))
    assert change.change == "dtype" and change.breaking
    assert "float32" in change.message and "float64" in change.message


def test_changed_input_shape_is_breaking():
    change = only(signature_diff(sig([field("x", shape=[-1, 4])]), sig([field("x", shape=[-1, 8])])))
    assert change.change == "shape" and change.breaking
    assert "[-1, 4]" in change.message and "[-1, 8]" in change.message


def test_changed_rank_is_breaking():
    assert only(signature_diff(sig([field("x", shape=[4])]), sig([field("x", shape=[4, 1])]))).breaking


def test_relaxing_an_input_dimension_to_any_is_compatible():
    change = only(signature_diff(sig([field("x", shape=[1, 4])]), sig([field("x", shape=[-1, 4])])))
    assert change.change == "shape" and not change.breaking


def test_fixing_an_input_dimension_is_breaking():
    assert only(signature_diff(sig([field("x", shape=[-1, 4])]), sig([field("x", shape=[1, 4])]))).breaking


def test_added_input_is_breaking_because_callers_do_not_send_it():
    change = only(signature_diff(sig([field("x")]), sig([field("x"), field("country", "string", [-1])])))
    assert (change.change, change.breaking) == ("added", True)


def test_added_output_is_compatible():
    old = sig([field("x")], [field("label", "int64", [-1])])
    new = sig([field("x")], [field("label", "int64", [-1]), field("probability", "float32", [-1, 2])])
    change = only(signature_diff(old, new))
    assert (change.part, change.change, change.breaking) == ("outputs", "added", False)


def test_removed_or_retyped_output_is_breaking():
    old = sig([field("x")], [field("label", "int64", [-1]), field("score")])
    new = sig([field("x")], [field("label", "string", [-1])])
    changes = {(c.name, c.change): c.breaking for c in signature_diff(old, new)}
    assert changes == {("label", "dtype"): True, ("score", "removed"): True}


def test_output_shape_made_more_specific_is_compatible_but_widened_is_breaking():
    narrowed = only(signature_diff(sig(outputs=[field("y", shape=[-1, -1])]), sig(outputs=[field("y", shape=[-1, 2])])))
    widened = only(signature_diff(sig(outputs=[field("y", shape=[-1, 2])]), sig(outputs=[field("y", shape=[-1, -1])])))
    assert not narrowed.breaking and widened.breaking


def test_profile_change_is_informative_only():
    change = only(signature_diff(sig([field("x", profile="numerical")]), sig([field("x", profile="text")])))
    assert (change.change, change.breaking) == ("profile", False)


def test_signature_appearing_is_compatible_and_disappearing_is_breaking():
    signature = sig([field("x")])
    assert only(signature_diff({}, signature)).breaking is False
    assert only(signature_diff(signature, {})).breaking is True


def test_several_changes_are_all_reported_in_order():
    old = sig([field("a"), field("b"), field("c")], [field("y")])
    new = sig([field("a", "int64"), field("c", shape=[-1, 5]), field("d")], [field("y"), field("z")])
    summary = [(c.part, c.name, c.change, c.breaking) for c in signature_diff(old, new)]
    assert summary == [
        ("inputs", "a", "dtype", True),
        ("inputs", "b", "removed", True),
        ("inputs", "c", "shape", True),
        ("inputs", "d", "added", True),
        ("outputs", "z", "added", False),
    ]


# --- JSON objects and metrics -----------------------------------------------------------

def test_flatten_uses_dotted_keys_and_keeps_lists_and_empty_objects_whole():
    assert flatten({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "extra": {}, "depth": 3}) == {
        "opt.lr": 0.1, "opt.betas": [0.9, 0.99], "extra": {}, "depth": 3,
    }
    assert flatten({}) == {}


def test_diff_mapping_reports_added_removed_changed_and_same():
    rows = {row.key: row for row in diff_mapping(
        {"lr": 0.1, "depth": 3, "opt": {"name": "adam"}, "gone": True},
        {"lr": 0.01, "depth": 3, "opt": {"name": "sgd"}, "new": "x"},
    )}
    assert {key: row.status for key, row in rows.items()} == {
        "depth": "same", "gone": "removed", "lr": "changed", "new": "added", "opt.name": "changed",
    }
    assert rows["gone"].new is MISSING and rows["gone"].new_text == ""
    assert rows["new"].new_text == '"x"'
    assert [row.key for row in rows.values()] == sorted(rows)


def test_values_python_considers_equal_but_json_does_not_are_changes():
    rows = {row.key: row.status for row in diff_mapping({"a": 1, "b": 1, "c": None}, {"a": 1.0, "b": True, "c": None})}
    assert rows == {"a": "changed", "b": "changed", "c": "same"}


def snap(number=1, **overrides):
    base = {
        "number": number,
        "fields": {"name": "", "status": "draft", "model_type": "", "tags": "", "records": "",
                   "signature_source": "", "description": ""},
        "hyperparameters": {}, "config": {}, "metadata": {}, "metrics": {}, "signature": {},
    }
    base.update(overrides)
    return base


def test_compare_versions_metrics_use_latest_values_with_a_delta():
    a = snap(1, metrics={"auc": {"value": 0.90, "step": 10}, "loss": {"value": 0.3, "step": None},
                         "note": {"value": "baseline", "step": None}})
    b = snap(2, metrics={"auc": {"value": 0.93, "step": 12}, "note": {"value": "tuned", "step": None},
                         "f1": {"value": 0.7, "step": None}})
    rows = {row.key: row for row in compare_versions(a, b).metrics}
    assert rows["auc"].delta == pytest.approx(0.03) and rows["auc"].old_note == "step 10"
    assert rows["auc"].new_note == "step 12"
    assert rows["loss"].status == "removed" and rows["loss"].delta is None
    assert rows["f1"].status == "added"
    assert rows["note"].status == "changed" and rows["note"].delta is None


def test_compare_identical_snapshots():
    comparison = compare_versions(snap(1, hyperparameters={"lr": 1}), snap(2, hyperparameters={"lr": 1}))
    assert comparison.identical
    assert comparison.breaking == []


def test_compare_versions_counts_changes_per_section():
    a = snap(1, fields={**snap()["fields"], "name": "baseline"}, config={"threshold": 0.5},
             signature=sig([field("x")]))
    b = snap(2, fields={**snap()["fields"], "name": "tuned"}, config={"threshold": 0.4},
             signature=sig([field("x", "float64")]))
    comparison = compare_versions(a, b)
    assert comparison.changed == {"fields": 1, "hyperparameters": 0, "config": 1, "metadata": 0,
                                  "metrics": 0, "signature": 1}
    assert [c.name for c in comparison.breaking] == ["x"]
    assert not comparison.identical
    name_row = next(row for row in comparison.fields if row.key == "name")
    assert (name_row.label, name_row.old, name_row.new, name_row.changed) == ("Name", "baseline", "tuned", True)


# --- from the database ------------------------------------------------------------------

@pytest.mark.django_db
def test_snapshot_reads_a_version_and_its_latest_metrics(context):
    model = services.model_create(actor=None, context=context, name="churn")
    record = services.record_create(actor=None, context=context, name="q4", uri="s3://d/q4")
    version = services.version_create(
        actor=None, model=model, name="first", tags=["b", "A"], framework="scikit-learn", framework_version="1.5.2",
        hyperparameters={"C": 1.0}, records=[str(record.pk)], signature=sig([field("x")]),
    )
    services.metrics_log(actor=None, version=version, metrics=[
        {"key": "auc", "value": 0.8, "step": 1}, {"key": "auc", "value": 0.9, "step": 2},
        {"key": "auc", "value": 0.85, "step": 0}, {"key": "note", "value": "ok"},
    ])
    version = selectors.version_detail(model, version.number)
    data = snapshot(version, selectors.metric_latest(version))
    assert data["fields"]["tags"] == "A, b"
    assert data["fields"]["model_type"] == "scikit-learn:1.5.2"
    assert data["fields"]["records"] == "q4"
    assert data["hyperparameters"] == {"C": 1.0}
    assert data["metrics"] == {"auc": {"value": 0.9, "step": 2}, "note": {"value": "ok", "step": None}}
    assert data["signature"]["inputs"][0]["name"] == "x"
