"""If-Match / If-None-Match as ARM checks them (controller/api/preconditions.py)."""
import pytest

from controller.api.preconditions import Preconditions, etag
from controller.core.errors import ModelError


def refused(pre: Preconditions, current: str | None) -> str:
    with pytest.raises(ModelError) as err:
        pre.check(current)
    assert err.value.code == "PreconditionFailed" and err.value.status == 412
    return err.value.field


def test_if_match_passes_only_the_current_etag():
    Preconditions.of({"If-Match": etag(3)}).check(etag(3))
    Preconditions.of({"If-Match": f'{etag(1)}, W/{etag(3)}'}).check(etag(3))
    assert refused(Preconditions.of({"If-Match": etag(2)}), etag(3)) == "If-Match"
    assert refused(Preconditions.of({"If-Match": "*"}), None) == "If-Match"
    Preconditions.of({"If-Match": "*"}).check(etag(7))


def test_if_none_match_star_refuses_an_existing_resource():
    Preconditions.of({"If-None-Match": "*"}).check(None)
    assert refused(Preconditions.of({"If-None-Match": "*"}), etag(1)) == "If-None-Match"
    assert refused(Preconditions.of({"If-None-Match": etag(1)}), etag(1)) == "If-None-Match"
    Preconditions.of({"If-None-Match": etag(1)}).check(etag(2))


def test_no_header_no_condition_and_bad_headers_named():
    pre = Preconditions.of({})
    assert not pre
    pre.check(None)
    for bad in ("", " , ", "x" * 300):
        with pytest.raises(ModelError) as err:
            Preconditions.of({"If-Match": bad})
        assert err.value.field == "If-Match" and err.value.status == 400
