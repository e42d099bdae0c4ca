"""The regex fast path of is_valid_path agrees with the exact character walk."""

from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.tree.paths import _is_valid_path_slow, is_valid_path

_ALPHABET = "/.ab\x00\x1f\x20\x7f\x9f\xa0\ud7ff\ud800\uf8ff\uf900\ufff0\uffff\U00010000"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=10))
def test_fast_path_matches_exact_rules(path):
    assert is_valid_path(path) == _is_valid_path_slow(path)


def test_known_answers():
    for good in ["/", "/a", "/a/b", "/a/.b", "/a/b.", "/a/..b", "/\u00a0", "/\uf900"]:
        assert is_valid_path(good), good
    for bad in ["", "a", "/a/", "//a", "/.", "/..", "/a/./b", "/a/../b", "/\x01", "/\x7f",
                "/\ud800", "/\ufff0", "/\U00010000", "/a\x00b"]:
        assert not is_valid_path(bad), bad
