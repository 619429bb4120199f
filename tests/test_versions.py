import pytest

from controller.core.errors import ImageError
from controller.model.versions import parse_version


def test_numeric_not_lexical_order():
    versions = ["1.9.0", "1.10.0", "1.2.3", "0.0.1", "2016.127.20180613", "10.0.0"]
    assert sorted(versions, key=parse_version) == [
        "0.0.1", "1.2.3", "1.9.0", "1.10.0", "10.0.0", "2016.127.20180613"]


@pytest.mark.parametrize("bad", ["1.0", "1.0.0.0", "v1.0.0", "1.0.x", "01.0.0", "1..0", "", "latest",
                                 "1.0.0 ", "-1.0.0", "1.0.99999999999"])
def test_malformed_versions_are_rejected_with_field_and_reason(bad):
    with pytest.raises(ImageError) as err:
        parse_version(bad, field="version")
    assert err.value.field == "version"
    assert "MAJOR.MINOR.PATCH" in err.value.reason or "above" in err.value.reason
    assert err.value.code == "InvalidImageVersion"
