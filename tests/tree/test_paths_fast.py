"""The fast paths of is_valid_path (printable ASCII, then a regex) agree with the
exact character walk."""

from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.tree.paths import _is_valid_path_slow, is_valid_path

_ALPHABET = "/.ab\x00\x1f\x20\x7f\x9f\xa0\ud7ff\ud800\uf8ff\uf900\ufff0\uffff\U00010000"
_ASCII = "/.a ~\x00\x01\x1f\x7f"  # the printable-ASCII fast path and its edges


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=10))
def test_fast_path_matches_exact_rules(path):
    assert is_valid_path(path) == _is_valid_path_slow(path)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=_ASCII, max_size=10))
def test_ascii_fast_path_matches_exact_rules(path):
    assert is_valid_path(path) == _is_valid_path_slow(path)


def test_known_answers():
    for good in ["/", "/a", "/a/b", "/a/.b", "/a/b.", "/a/..b", "/\u00a0", "/\uf900", "/a b/~",
                 "/k0000000001"]:
        assert is_valid_path(good), good
    for bad in ["", "a", "/a/", "//a", "/.", "/..", "/a/./b", "/a/../b", "/\x01", "/\x7f",
                "/\ud800", "/\ufff0", "/\U00010000", "/a\x00b", "/a//b", "/a/b/", "/a/.", "/a/.."]:
        assert not is_valid_path(bad), bad
