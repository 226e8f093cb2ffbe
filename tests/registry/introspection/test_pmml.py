import io
import json
import time

import pytest

from registry.introspection.pmml import inspect_pmml
from registry.introspection.report import FAILED, READY
from tests.registry.introspection.sandbox import MALICIOUS_PICKLE, sandbox  # noqa: F401 (fixture)

REGRESSION_PMML = b"""<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header copyright="Acme" description="house prices">
    <Application name="SkLearn2PMML package" version="0.100.0"/>
  </Header>
  <DataDictionary numberOfFields="4">
    <DataField name="rooms" optype="continuous" dataType="integer"/>
    <DataField name="area" optype="continuous" dataType="double"/>
    <DataField name="city" optype="categorical" dataType="string">
      <Value value="Paris"/><Value value="Lyon"/>
    </DataField>
    <DataField name="price" optype="continuous" dataType="float"/>
  </DataDictionary>
  <RegressionModel modelName="prices" functionName="regression" algorithmName="least squares">
    <MiningSchema>
      <MiningField name="price" usageType="target"/>
      <MiningField name="rooms"/>
      <MiningField name="area" usageType="active"/>
      <MiningField name="city"/>
    </MiningSchema>
    <Output>
      <OutputField name="predicted_price" feature="predictedValue" dataType="double" optype="continuous"/>
    </Output>
    <RegressionTable intercept="1.5">
      <NumericPredictor name="rooms" coefficient="2.0"/>
      <NumericPredictor name="area" coefficient="0.3"/>
      <CategoricalPredictor name="city" value="Paris" coefficient="10"/>
    </RegressionTable>
  </RegressionModel>
</PMML>
"""


def inspect(data: bytes):
    return inspect_pmml(io.BytesIO(data))


def test_a_regression_model_gives_its_fields_and_signature(sandbox):
    report = inspect(REGRESSION_PMML)
    assert report.status == READY, report.message
    assert report.detected_kind == "pmml"
    details = report.details
    assert details["pmml_version"] == "4.4"
    assert details["model_type"] == "RegressionModel"
    assert details["model"] == {"modelName": "prices", "functionName": "regression",
                                "algorithmName": "least squares"}
    assert details["header"] == {"copyright": "Acme", "description": "house prices",
                                 "application": "SkLearn2PMML package", "application_version": "0.100.0"}
    assert details["data_dictionary"] == [
        {"name": "rooms", "optype": "continuous", "dataType": "integer"},
        {"name": "area", "optype": "continuous", "dataType": "double"},
        {"name": "city", "optype": "categorical", "dataType": "string"},
        {"name": "price", "optype": "continuous", "dataType": "float"},
    ]
    assert [(field["name"], field["usageType"]) for field in details["mining_schema"]] == [
        ("price", "target"), ("rooms", "active"), ("area", "active"), ("city", "active"),
    ]
    assert report.signature == {
        "inputs": [
            {"name": "rooms", "dtype": "int64", "shape": [-1], "profile": "numerical"},
            {"name": "area", "dtype": "float64", "shape": [-1], "profile": "numerical"},
            {"name": "city", "dtype": "string", "shape": [-1]},
        ],
        "outputs": [{"name": "price", "dtype": "float32", "shape": [-1], "profile": "numerical"}],
    }
    assert details["output_fields"][0]["name"] == "predicted_price"
    assert "RegressionModel" in report.message
    json.dumps(report.as_dict())


def test_only_the_top_model_mining_schema_counts_in_an_ensemble(sandbox):
    pmml = b"""<PMML version="4.3" xmlns="http://www.dmg.org/PMML-4_3">
      <DataDictionary>
        <DataField name="x" optype="continuous" dataType="double"/>
        <DataField name="flag" optype="categorical" dataType="boolean"/>
        <DataField name="y" optype="categorical" dataType="string"/>
      </DataDictionary>
      <MiningModel functionName="classification">
        <MiningSchema>
          <MiningField name="y" usageType="predicted"/>
          <MiningField name="x"/>
          <MiningField name="flag"/>
        </MiningSchema>
        <Segmentation multipleModelMethod="majorityVote">
          <Segment id="1"><True/>
            <TreeModel functionName="classification">
              <MiningSchema><MiningField name="y" usageType="predicted"/><MiningField name="x"/></MiningSchema>
              <Node score="a"><True/>
                <Node score="b"><SimplePredicate field="x" operator="lessThan" value="1"/></Node>
              </Node>
            </TreeModel>
          </Segment>
          <Segment id="2"><True/>
            <TreeModel functionName="classification">
              <MiningSchema><MiningField name="y" usageType="predicted"/><MiningField name="flag"/></MiningSchema>
              <Node score="a"><True/></Node>
            </TreeModel>
          </Segment>
        </Segmentation>
      </MiningModel>
    </PMML>"""
    report = inspect(pmml)
    assert report.status == READY, report.message
    assert report.details["model_type"] == "MiningModel"
    assert report.details["model_element_count"] == 3
    assert report.details["element_counts"] == {"Segment": 2, "Node": 3}
    assert report.signature["inputs"] == [
        {"name": "x", "dtype": "float64", "shape": [-1], "profile": "numerical"},
        {"name": "flag", "dtype": "bool", "shape": [-1]},
    ]
    assert report.signature["outputs"] == [{"name": "y", "dtype": "string", "shape": [-1]}]


def test_output_fields_are_the_outputs_when_nothing_is_predicted(sandbox):
    pmml = b"""<PMML version="4.4"><DataDictionary><DataField name="x" optype="continuous" dataType="double"/>
      </DataDictionary><ClusteringModel functionName="clustering" modelClass="centerBased" numberOfClusters="1">
      <MiningSchema><MiningField name="x"/></MiningSchema>
      <Output><OutputField name="cluster" feature="predictedValue" dataType="string"/></Output>
      <Cluster><Array n="1" type="real">1.0</Array></Cluster></ClusteringModel></PMML>"""
    report = inspect(pmml)
    assert report.signature["outputs"] == [{"name": "cluster", "dtype": "string", "shape": [-1]}]


def test_a_billion_laughs_is_refused_without_expanding(sandbox):
    lol = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
""" + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (level, b"".join(b"&lol%s;" % (b"" if level == 1 else str(level - 1).encode())
                                                     for _ in range(10)))
        for level in range(1, 10)
    ) + b"""]>
<PMML version="4.4"><Header description="&lol9;"/></PMML>"""
    started = time.monotonic()
    report = inspect(lol)
    assert time.monotonic() - started < 1
    assert report.status == FAILED
    assert "DOCTYPE" in report.message
    assert "lollol" not in json.dumps(report.as_dict())


def test_external_entities_are_refused_and_nothing_is_read(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"TOP-SECRET-{sandbox.token}")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE PMML [<!ENTITY xxe SYSTEM "file://{secret}">]>
<PMML version="4.4"><Header description="&xxe;"/>
<DataDictionary><DataField name="&xxe;" optype="continuous" dataType="double"/></DataDictionary>
<RegressionModel functionName="regression"><MiningSchema><MiningField name="&xxe;"/></MiningSchema>
</RegressionModel></PMML>""".encode()
    report = inspect(xxe)
    assert report.status == FAILED
    assert sandbox.token not in json.dumps(report.as_dict())
    secret.unlink()


def test_an_external_dtd_is_refused(sandbox):
    data = (b'<?xml version="1.0"?><!DOCTYPE PMML SYSTEM "http://attacker.invalid/evil.dtd">'
            b'<PMML version="4.4"/>')
    report = inspect(data)
    assert report.status == FAILED
    assert "DOCTYPE" in report.message


def test_parameter_entities_are_refused(sandbox):
    data = (b'<?xml version="1.0"?><!DOCTYPE PMML [<!ENTITY % remote SYSTEM "http://attacker.invalid/x">'
            b'%remote;]><PMML version="4.4"/>')
    assert inspect(data).status == FAILED


@pytest.mark.parametrize("data, reason", [
    (b"", "not well-formed"),
    (b"<PMML version='4.4'><DataDictionary>", "not well-formed"),
    (b"<html><body>hello</body></html>", "root element is <html>"),
    (b'<PMML version="4.4"><DataDictionary/></PMML>', "without a model element"),
    (MALICIOUS_PICKLE, "a pickle"),
])
def test_invalid_documents_fail(sandbox, data, reason):
    report = inspect(data)
    assert report.status == FAILED
    assert reason in report.message


def test_a_large_document_streams(sandbox):
    nodes = b"".join(b'<Node score="%d"><True/></Node>' % index for index in range(50_000))
    pmml = (b'<PMML version="4.4"><DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
            b'</DataDictionary><TreeModel functionName="regression"><MiningSchema><MiningField name="x"/>'
            b'</MiningSchema><Node><True/>' + nodes + b"</Node></TreeModel></PMML>")
    report = inspect(pmml)
    assert report.status == READY
    assert report.details["element_counts"]["Node"] == 50_001
