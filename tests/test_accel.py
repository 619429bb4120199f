import pytest

from controller.virt import accel

NO_VIRT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae sse sse2 hypervisor\n"
VMX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse sse2\n"


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("SCALESET_ACCEL", raising=False)


def test_no_vmx_svm_means_tcg_even_with_a_kvm_node(tmp_path):
    cpu = tmp_path / "cpuinfo"
    cpu.write_text(NO_VIRT)
    a = accel.detect(str(cpu), "/dev/kvm")
    assert a.kind == "tcg" and a.domain_type == "qemu" and "vmx/svm" in a.reason


def test_flag_without_a_working_kvm_device_means_tcg(tmp_path):
    cpu = tmp_path / "cpuinfo"
    cpu.write_text(VMX)
    assert accel.detect(str(cpu), str(tmp_path / "missing")).kind == "tcg"
    # a device that is not KVM: the ioctl fails, we fall back instead of hanging
    assert accel.detect(str(cpu), "/dev/null").kind == "tcg"


def test_override_and_bad_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SCALESET_ACCEL", "kvm")
    assert accel.detect().kind == "kvm"
    monkeypatch.setenv("SCALESET_ACCEL", "xen")
    with pytest.raises(ValueError, match="SCALESET_ACCEL"):
        accel.detect()


def test_this_machine_answers_without_hanging():
    a = accel.detect()
    assert a.kind in ("kvm", "tcg") and a.reason
