import pytest

from zabby.testing import ZabbyEnsemble


@pytest.fixture
def ensemble(tmp_path):
    """Three members on loopback, tickTime 200 ms; stopped (by pid) afterwards."""
    ens = ZabbyEnsemble(tmp_path, 3, tickTime=200)
    try:
        yield ens
    finally:
        ens.stop()
