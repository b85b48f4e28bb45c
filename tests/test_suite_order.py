"""The suite's file order (`conftest.HEAVIEST_FIRST`) names real test files and
sets the order pytest collects them in."""

import os
import pathlib
import types

import conftest

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_heaviest_first_names_existing_files_once():
  missing = [f for f in conftest.HEAVIEST_FIRST
             if not os.path.exists(os.path.join(TESTS, f))]
  assert not missing, f"HEAVIEST_FIRST names files that do not exist: {missing}"
  assert len(set(conftest.HEAVIEST_FIRST)) == len(conftest.HEAVIEST_FIRST)


def test_longest_files_first_then_most_tests_and_a_files_order_kept():
  item = lambda name, test: types.SimpleNamespace(  # noqa: E731
      path=pathlib.Path(TESTS, name), name=test)
  heavy, second = conftest.HEAVIEST_FIRST[:2]
  items = [item("test_a.py", "1"), item("test_b.py", "1"), item("test_b.py", "2"),
           item(second, "1"), item(heavy, "1"), item(second, "2"), item(heavy, "2")]
  conftest.pytest_collection_modifyitems(None, items)
  assert [(i.path.name, i.name) for i in items] == [
      (heavy, "1"), (heavy, "2"), (second, "1"), (second, "2"),
      ("test_b.py", "1"), ("test_b.py", "2"), ("test_a.py", "1")]
