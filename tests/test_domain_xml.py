import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from controller.virt.domain_xml import Disk, DomainSpec, Forward, netdev_arg, render
from controller.virt.hypervisor import Hypervisor

EVIL = "vm0'><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><name>x"


def spec(name="vmss-a-0", scale_set="vmss-a", **kw):
    return DomainSpec(
        name=name, home=Path("/tmp/lab"), console_log=Path("/tmp/lab/logs/c.log"),
        forwards=[Forward(20022, 22), Forward(20080, 80)], scale_set=scale_set, instance_id="0",
        disks=[Disk(Path("/tmp/lab/disks/os.qcow2"), "vda"),
               Disk(Path("/tmp/lab/disks/lun0.qcow2"), "vdb", serial="lun-0"),
               Disk(Path("/tmp/lab/disks/seed.iso"), "vdz", format="raw", readonly=True)], **kw)


def test_forwards_listen_on_loopback_only():
    arg = netdev_arg([Forward(20022, 22), Forward(20080, 8080)])
    assert arg == "user,id=n0,hostfwd=tcp:127.0.0.1:20022-:22,hostfwd=tcp:127.0.0.1:20080-:8080"


def test_rendered_xml_is_well_formed_with_devices_we_expect():
    root = ET.fromstring(render(spec()))
    assert root.get("type") == "qemu"
    serials = [d.find("serial").text for d in root.iter("disk") if d.find("serial") is not None]
    assert serials == ["lun-0"]
    targets = [t.get("dev") for t in root.iter("target") if t.get("bus") == "virtio"]
    assert targets == ["vda", "vdb", "vdz"]
    args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert any("hostfwd=tcp:127.0.0.1:20022-:22" in a for a in args)
    assert any(a.startswith("virtio-net-pci") and "addr=0x10" in a for a in args)


def test_model_values_cannot_inject_xml():
    xml = render(spec(name=EVIL, scale_set="<script>&"))
    root = ET.fromstring(xml)
    assert root.find("name").text == EVIL
    sources = [s.get("file") for s in root.iter("source") if s.get("file")]
    assert "/etc/shadow" not in sources
    assert len(root.findall("devices")) == 1


def test_mac_is_stable_per_name():
    assert spec().mac == spec().mac and spec().mac != spec(name="vmss-a-1").mac


def test_metadata_round_trips_through_libvirt_test_driver():
    hv = Hypervisor("test:///default")
    try:
        # the test driver has no qemu:commandline but keeps metadata
        dom = hv.define(render(spec(name="lab-meta-test")))
        try:
            tag = dom.lab_tag()
            assert tag is not None
            assert (tag.home, tag.scale_set, tag.instance_id) == ("/tmp/lab", "vmss-a", "0")
            assert [d.name for d in hv.lab_domains("/tmp/lab")] == ["lab-meta-test"]
            assert hv.lab_domains("/tmp/other-lab") == []
            dom.start()
            assert dom.state() == "running"
            dom.undefine()
            assert hv.lookup("lab-meta-test") is None
        finally:
            if hv.lookup("lab-meta-test"):
                hv.lookup("lab-meta-test").undefine()
    finally:
        hv.close()


def test_bad_uri_gives_a_clear_error():
    from controller.core.errors import HypervisorError
    with pytest.raises(HypervisorError, match="cannot connect"):
        Hypervisor("test:///nonexistent/file.xml")


def test_nat_mode_uses_a_libvirt_network_and_no_forwards():
    root = ET.fromstring(render(spec(network="nat")))
    iface = root.find("devices/interface")
    assert iface.get("type") == "network" and iface.find("source").get("network") == "default"
    assert root.find("{http://libvirt.org/schemas/domain/qemu/1.0}commandline") is None


def test_uuid_is_stable_per_name_so_a_new_os_disk_redefines_the_same_domain():
    assert spec().uuid == spec().uuid != spec(name="vmss-a-1").uuid
    assert ET.fromstring(render(spec())).find("uuid").text == spec().uuid


def test_states_of_many_domains_in_one_listing():
    hv = Hypervisor("test:///default")
    names = ["lab-states-up", "lab-states-down"]
    try:
        up, down = (hv.define(render(spec(name=n))) for n in names)
        up.start()
        assert hv.states([*names, "lab-states-missing"]) == {"lab-states-up": "running",
                                                             "lab-states-down": "stopped",
                                                             "lab-states-missing": None}
        assert hv.running([*names, "lab-states-missing"]) == {"lab-states-up"}
    finally:
        for n in names:
            if hv.lookup(n):
                hv.lookup(n).undefine()
        hv.close()


def test_host_caching_becomes_the_disk_cache_mode():
    from controller.virt.domain_xml import cache_mode
    assert [cache_mode(c) for c in ("ReadWrite", "ReadOnly", "None", "readwrite")] == \
        ["writeback", "writethrough", "none", "writeback"]
    assert cache_mode("None", direct_io=False) == "writethrough"  # tmpfs has no O_DIRECT
    s = spec()
    s.disks[0] = Disk(s.disks[0].path, "vda", cache="writeback")
    s.disks[1] = Disk(s.disks[1].path, "vdb", serial="lun-0", cache="none")
    drivers = [d.find("driver").get("cache") for d in ET.fromstring(render(s)).iter("disk")]
    assert drivers == ["writeback", "none", None]
