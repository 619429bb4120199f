"""A CLI subprocess of a fast test (PYTHONPATH=tests.fakepool.PYTHONPATH) gets the test driver's
upload and resize stand-ins, as the tests' own process has them (tests/fakepool.py)."""
from tests.fakepool import install

install()
