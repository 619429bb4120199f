"""prepare(): parameters checked, variables, resources expanded (copy, condition, children),
dependencies and levels (a cycle named), outputs, the parameters record; secure values never in
an error or a record. The seeds' template and the one `az vmss create` builds."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.template.errors import TemplateError
from controller.template.template import Environment, prepare
from tests.template_samples import az_vmss_create, seed_autoupdate

SUB, RG = "sub1", "rg1"
P = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
CALLS: list = []


def reference(rid: str, api: str | None, full: bool) -> dict:
    CALLS.append((rid, api, full))
    doc = {"id": rid, "sku": {"capacity": 2}, "properties": {"provisioningState": "Succeeded", "x": rid[-3:]}}
    return doc if full else doc["properties"]


def providers(ns: str, rtype: str | None) -> dict:
    return {"namespace": ns, "resourceTypes": [{"resourceType": "virtualMachineScaleSets", "locations": ["local"],
                                                "apiVersions": ["2024-07-01", "2023-09-01"]}]}


ENV = Environment(SUB, RG, "local", "dep1", reference=reference, providers=providers)


def res(name: str, rtype: str = "Microsoft.Compute/virtualMachineScaleSets", **kw) -> dict:
    return {"type": rtype, "apiVersion": "2024-07-01", "name": name, "location": "local", **kw}


def tmpl(resources: list, parameters: dict | None = None, variables: dict | None = None, outputs: dict | None = None):
    return {"$schema": "x", "contentVersion": "1.0.0.0", "parameters": parameters or {},
            "variables": variables or {}, "resources": resources, "outputs": outputs or {}}


def names(levels) -> list[list[str]]:
    return [[r.name for r in level] for level in levels]


def refused(template: dict, given: dict | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as e:
        prepare(template, given or {}, ENV)
    assert e.value.code == "InvalidTemplate"
    return e.value


def test_the_seeds_template():
    given = {"vmssName": {"value": "web"}, "instanceCount": {"value": "2"}, "adminUsername": {"value": "azu"},
             "adminPassword": {"value": "S3cret!pass"}}
    p = prepare(seed_autoupdate(), given, ENV)
    assert [(r.type, r.name) for r in p.resources] == [
        ("Microsoft.Network/virtualNetworks", "webvnet"), ("Microsoft.Network/loadBalancers", "weblb"),
        ("Microsoft.Compute/virtualMachineScaleSets", "web")]
    assert names(p.levels()) == [["webvnet"], ["weblb"], ["web"]]
    body = p.resources[2].evaluate(ENV)
    probe = f"{P}/Microsoft.Network/loadBalancers/weblb/probes/sshProbe"
    assert body["properties"]["virtualMachineProfile"]["networkProfile"]["healthProbe"]["id"] == probe
    assert body["sku"]["capacity"] == 2 and body["location"] == "local"
    assert body["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] == "true"
    assert body["properties"]["virtualMachineProfile"]["osProfile"]["adminPassword"] == "S3cret!pass"
    assert p.outputs(ENV) == {"probe": {"type": "String", "value": probe}}
    record = p.parameters_record()
    assert record["adminPassword"] == {"type": "SecureString"} and record["instanceCount"]["value"] == 2
    assert "S3cret!pass" not in json.dumps(record)


def test_parameter_files_defaults_and_case():
    t = tmpl([res("[parameters('Name')]")], {"name": {"type": "string"},
                                             "size": {"type": "int", "defaultValue": "[length(parameters('name'))]"},
                                             "on": {"type": "bool", "defaultValue": "[equals(parameters('size'), 3)]"}})
    doc = {"$schema": "x", "contentVersion": "1.0.0.0", "parameters": {"NAME": {"value": "abc"}}}
    p = prepare(t, doc, ENV)
    assert p.resources[0].name == "abc"
    assert p.parameters_record() == {"name": {"type": "String", "value": "abc"}, "size": {"type": "Int", "value": 3},
                                     "on": {"type": "Bool", "value": True}}


@pytest.mark.parametrize("decl, given, field, problem", [
    ({"a": {"type": "string"}}, {}, "parameters.a", "The value for the template parameter 'a' is not provided"),
    ({}, {"zz": {"value": 1}}, "parameters.zz", "'zz' is not valid"),
    ({"a": {"type": "int"}}, {"a": {"value": "x"}}, "parameters.a", "Expected a value of type 'Int'".lower()),
    ({"a": {"type": "int", "maxValue": 5}}, {"a": {"value": 6}}, "parameters.a", "maximum value 5"),
    ({"a": {"type": "int", "minValue": 5}}, {"a": {"value": 4}}, "parameters.a", "minimum value 5"),
    ({"a": {"type": "string", "maxLength": 2}}, {"a": {"value": "abc"}}, "parameters.a", "maximum length 2"),
    ({"a": {"type": "array", "minLength": 1}}, {"a": {"value": []}}, "parameters.a", "minimum length 1"),
    ({"a": {"type": "string", "allowedValues": ["x", "y"]}}, {"a": {"value": "z"}}, "parameters.a",
     "the value 'z' is not part of the allowed value(s): 'x, y'"),
    ({"a": {"type": "float"}}, {}, "parameters.a.type", "not one of"),
    ({"a": {"type": "string", "defaultValue": "[parameters('b')]"}}, {}, "parameters.a.defaultValue",
     "'b' is not found"),
])
def test_parameter_errors_name_the_parameter(decl, given, field, problem):
    e = refused(tmpl([], decl), given)
    assert e.field == field and problem.lower() in e.reason.lower(), e.reason


def test_secure_values_never_in_errors():
    secret = "Sup3r-Secret-Value"
    for decl, given in [({"type": "securestring", "allowedValues": ["a"]}, secret),
                        ({"type": "securestring", "maxLength": 3}, secret),
                        ({"type": "secureobject"}, secret),
                        ({"type": "int"}, secret)]:
        t = tmpl([res("x", properties={"v": "[int(parameters('pw'))]"})], {"pw": decl})
        try:
            p = prepare(t, {"pw": {"value": given}}, ENV)
            p.resources[0].evaluate(ENV)
        except TemplateError as e:
            assert secret not in str(e) and secret not in json.dumps(e.to_json())
        else:
            raise AssertionError("not refused")
    p = prepare(tmpl([res("x", properties={"v": "[int(parameters('pw'))]"})], {"pw": {"type": "securestring"}}),
                {"pw": {"value": secret}}, ENV)
    with pytest.raises(TemplateError) as e:
        p.resources[0].evaluate(ENV)
    assert secret not in str(e.value) and e.value.field == "resources[0].properties.v"


def test_variables_refer_to_each_other_in_any_order_and_copy():
    t = tmpl([res("[variables('Full')]")], variables={
        "full": "[concat(variables('prefix'), '-', string(length(variables('disks'))))]", "prefix": "web",
        "copy": [{"name": "disks", "count": 2, "input": {"lun": "[copyIndex('disks')]"}}]})
    assert prepare(t, {}, ENV).resources[0].name == "web-2"
    e = refused(tmpl([], variables={"a": "[variables('b')]", "b": "[variables('a')]"}))
    assert "refer to themselves" in e.reason
    e = refused(tmpl([], variables={"a": "[variables('nope')]"}))
    assert e.field == "variables.a" and "'nope' is not found" in e.reason


def test_copy_loop_serial_batches_and_outputs_copy():
    t = tmpl([res("[concat('web', copyIndex(1))]", copy={"name": "sets", "count": 5, "mode": "Serial", "batchSize": 2},
                  properties={"n": "[copyIndex()]"}),
              res("after", dependsOn=["sets"])],
             outputs={"names": {"type": "array", "copy": {"count": 3, "input": "[concat('n', copyIndex())]"}},
                      "skip": {"type": "string", "condition": "[equals(1, 2)]", "value": "x"}})
    p = prepare(t, {}, ENV)
    assert [r.name for r in p.resources] == ["web1", "web2", "web3", "web4", "web5", "after"]
    assert [(r.copy, r.index) for r in p.resources][:2] == [("sets", 0), ("sets", 1)]
    assert names(p.levels()) == [["web1", "web2"], ["web3", "web4"], ["web5"], ["after"]]
    assert p.resources[3].evaluate(ENV) == {"location": "local", "properties": {"n": 3}}
    assert p.outputs(ENV) == {"names": {"type": "Array", "value": ["n0", "n1", "n2"]}}
    parallel = prepare(tmpl([res("[concat('w', copyIndex())]", copy={"name": "c", "count": 3})]), {}, ENV)
    assert names(parallel.levels()) == [["w0", "w1", "w2"]]


def test_conditions_children_and_dependencies():
    lb = "Microsoft.Network/loadBalancers"
    t = tmpl([res("lb", lb, resources=[res("probe1", "probes")]),
              res("lb/rule1", f"{lb}/loadBalancingRules", dependsOn=[f"{lb}/lb/probes/probe1"]),
              res("off", condition="[equals(1, 2)]"),
              res("ss", dependsOn=["off", f"[resourceId('{lb}', 'lb')]"],
                  properties={"p": "[reference('lb/probe1').x]",
                              "o": "[reference(resourceId('Microsoft.X/y', 'z'))]"})])
    p = prepare(t, {}, ENV)
    assert [(r.type, r.name) for r in p.resources] == [(lb, "lb"), (f"{lb}/probes", "lb/probe1"),
                                                       (f"{lb}/loadBalancingRules", "lb/rule1"),
                                                       ("Microsoft.Compute/virtualMachineScaleSets", "ss")]
    assert p.resources[1].id == f"{P}/{lb}/lb/probes/probe1"
    assert p.resources[1].path == "resources[0].resources[0]"
    assert names(p.levels()) == [["lb"], ["lb/probe1"], ["lb/rule1", "ss"]]
    assert set(p.resources[3].depends_on) == {f"{P}/{lb}/lb", f"{P}/{lb}/lb/probes/probe1"}
    CALLS.clear()
    assert p.resources[3].evaluate(ENV)["properties"]["p"] == "be1"
    assert CALLS[0] == (f"{P}/{lb}/lb/probes/probe1", None, False)


@pytest.mark.parametrize("resources, field, problem", [
    ([res("a", dependsOn=["b"]), res("b", dependsOn=["c"]), res("c", dependsOn=["a"])], "resources[0].dependsOn",
     "a cycle: Microsoft.Compute/virtualMachineScaleSets/a -> Microsoft.Compute/virtualMachineScaleSets/b -> "
     "Microsoft.Compute/virtualMachineScaleSets/c -> Microsoft.Compute/virtualMachineScaleSets/a"),
    ([res("a", dependsOn=["a"])], "resources[0].dependsOn", "Circular dependency"),
    ([res("a", dependsOn=["ghost"])], "resources[0].dependsOn[0]", "'ghost' is not defined in the template"),
    ([res("a/b")], "resources[0].name", "incorrect segment lengths"),
    ([res("a", copy={"name": "c", "count": 2})], "resources[0].name", "defined multiple times"),
    ([res("a"), res("A")], "resources[1].name", "defined multiple times"),
    ([res("[parameters('nope')]")], "resources[0].name", "The template parameter 'nope' is not found"),
    ([{"type": "Microsoft.X/y", "name": "n"}], "resources[0].apiVersion", "no apiVersion"),
    ([res("a", copy={"name": "c", "count": 801})], "resources[0].copy.count", "between 0 and 800"),
    ([res("a", condition="yes")], "resources[0].condition", "must be a boolean"),
    ([res("a", properties={"x": "[concat('a',]"})], "resources[0].properties.x", "not valid"),
    ([res("[reference('b').x]")], "resources[0].name", "not expected at this location"),
])
def test_resource_errors_name_the_path(resources, field, problem):
    e = refused(tmpl(resources))
    assert e.field == field and problem in e.reason, (e.field, e.reason)


def test_output_errors_and_types():
    e = refused(tmpl([], outputs={"o": {"type": "string", "value": "[concat(]"}}))
    assert e.field == "outputs.o.value"
    p = prepare(tmpl([], outputs={"o": {"type": "int", "value": "[resourceGroup()]"}}), {}, ENV)
    with pytest.raises(TemplateError, match="expected a value of type 'Int'"):
        p.outputs(ENV)
    p = prepare(tmpl([], {"pw": {"type": "securestring", "defaultValue": "z"}},
                     outputs={"s": {"type": "securestring", "value": "[parameters('pw')]"}}), {}, ENV)
    assert p.outputs(ENV) == {}


def test_the_template_az_vmss_create_builds():
    p = prepare(az_vmss_create(), {"adminPassword": {"value": "Pa55w0rd-of-az"}}, ENV)
    assert names(p.levels()) == [["vmss1VNET", "vmss1LBPublicIP"], ["vmss1LB"], ["vmss1"]]
    body = p.resources[3].evaluate(ENV)
    ip = body["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0]
    pools = ip["properties"]["ipConfigurations"][0]["properties"]["loadBalancerBackendAddressPools"]
    assert pools == [{"id": f"{P}/Microsoft.Network/loadBalancers/vmss1LB/backendAddressPools/vmss1LBBEPool"}]
    CALLS.clear()
    out = p.outputs(ENV)
    assert out["VMSS"]["type"] == "Object" and out["VMSS"]["value"]["provisioningState"] == "Succeeded"
    assert CALLS == [(f"{P}/Microsoft.Compute/virtualMachineScaleSets/vmss1", "2024-07-01", False)]
    assert "Pa55w0rd-of-az" not in json.dumps(p.parameters_record())


def test_reference_by_name_waits_for_the_resource_by_id_does_not():
    lb = "Microsoft.Network/loadBalancers"
    t = tmpl([res("lb", lb), res("byname", properties={"r": "[reference('lb').x]"}),
              res("byid", properties={"r": f"[reference(resourceId('{lb}', 'lb')).x]"})])
    p = prepare(t, {}, ENV)
    assert [r.depends_on for r in p.resources] == [[], [f"{P}/{lb}/lb"], []]


def test_outputs_never_show_a_secure_value():
    t = tmpl([], {"pw": {"type": "securestring"}, "o": {"type": "secureObject"}},
             outputs={"a": {"type": "string", "value": "[concat('pw=', parameters('pw'))]"},
                      "b": {"type": "object", "value": "[parameters('o')]"}})
    p = prepare(t, {"pw": {"value": "Hidden-One"}, "o": {"value": {"k": ["Hidden-Two"]}}}, ENV)
    assert p.outputs(ENV) == {"a": {"type": "String", "value": "pw=***"},
                              "b": {"type": "Object", "value": {"k": ["***"]}}}
    assert p.parameters_record() == {"pw": {"type": "SecureString"}, "o": {"type": "SecureObject"}}


def test_an_environment_error_names_the_expression_path():
    def missing(rid, api, full):
        raise TemplateError("reference", "The Resource 'Microsoft.X/y' was not found", "ResourceNotFound")
    env = Environment(SUB, RG, "local", "dep1", reference=missing)
    p = prepare(tmpl([], outputs={"o": {"type": "string", "value": f"[reference('{P}/Microsoft.X/y/z').a]"}}), {}, env)
    with pytest.raises(TemplateError) as e:
        p.outputs(env)
    assert e.value.code == "ResourceNotFound" and e.value.field == "outputs.o.value"


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n - 1),
                                                                                    st.integers(0, n - 1))))))
def test_levels_order_every_dependency_or_name_the_cycle(graph):
    n, edges = graph
    deps: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in edges:
        deps[a].add(b)
    t = tmpl([res(f"r{i}", dependsOn=[f"r{j}" for j in sorted(deps[i])]) for i in range(n)])

    def cyclic() -> bool:
        seen, stack = set(), set()

        def visit(i: int) -> bool:
            if i in stack:
                return True
            if i in seen:
                return False
            seen.add(i)
            stack.add(i)
            found = any(visit(j) for j in deps[i])
            stack.discard(i)
            return found
        return any(visit(i) for i in range(n))
    if cyclic():
        assert "a cycle" in refused(t).reason
        return
    levels = prepare(t, {}, ENV).levels()
    where = {r.name: k for k, level in enumerate(levels) for r in level}
    assert sorted(where) == sorted(f"r{i}" for i in range(n))
    assert all(where[f"r{i}"] > where[f"r{j}"] for i in range(n) for j in deps[i])
    assert all(any(where[f"r{i}"] == where[f"r{j}"] + 1 for j in deps[i]) for i in range(n) if deps[i])


def test_copy_index_in_depends_on_pairs_the_copies():
    nic = "Microsoft.Network/networkInterfaces"
    t = tmpl([res("[concat('nic', copyIndex())]", nic, copy={"name": "nics", "count": 2}),
              res("[concat('vm', copyIndex())]", copy={"name": "vms", "count": 2},
                  dependsOn=[f"[resourceId('{nic}', concat('nic', copyIndex()))]"])])
    p = prepare(t, {}, ENV)
    assert {r.name: r.depends_on for r in p.resources if r.copy == "vms"} == {
        "vm0": [f"{P}/{nic}/nic0"], "vm1": [f"{P}/{nic}/nic1"]}


@pytest.mark.parametrize("key", ["existing", "Existing"])
def test_what_the_lab_does_not_deploy_is_refused_naming_it(key):
    template = {"resources": [{"type": "Microsoft.Compute/virtualMachineScaleSets", "apiVersion": "2024-07-01",
                               "name": "web", key: True, "properties": {}}]}
    with pytest.raises(TemplateError) as err:
        prepare(template, {}, ENV)
    assert err.value.field == f"resources[0].{key}" and "not supported" in err.value.reason
