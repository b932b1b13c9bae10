"""Suite data checks (lanic_hub.evaluation.suites): a suite's missing data is refused before any work."""

from __future__ import annotations

import pytest

from lanic_hub.errors import ConfigError, DataError
from lanic_hub.evaluation.suites import SUITES, check_suite_data, fixtures_root


def test_unknown_suite_and_missing_data_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown suite 'mimic'; choose from"):
        check_suite_data("mimic", None)
    for name in ("mimic-cxr", "chexpert", "nih", "data"):
        assert name in SUITES
        with pytest.raises(ConfigError, match=rf"suite '{name}' needs --data PATH"):
            check_suite_data(name, None)
    check_suite_data("phantom", None)  # the embedded default needs nothing


def test_real_fixtures_folder_is_checked(tmp_path, shared_data):
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope'}: no such folder"):
        fixtures_root(str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"no labels.csv; this is not the NIH fixture folder"):
        check_suite_data("real-fixtures", str(tmp_path))
    assert fixtures_root(str(shared_data / "cxr_real")) == shared_data / "cxr_real"
    assert fixtures_root(None) == shared_data / "cxr_real"  # found beside the clone


def test_a_dataset_suite_parses_its_spec_before_any_model_is_loaded(tmp_path):
    with pytest.raises(DataError):
        check_suite_data("mimic-cxr", str(tmp_path / "no-such-mimic"))
