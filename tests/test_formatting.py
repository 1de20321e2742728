"""The one way each kind of value is written (tune_nas.record.formatting) and the one rule for
showing a URL that may hold credentials (tune_nas.storage.masking)."""

from __future__ import annotations

import math

import pytest

from tune_nas.record import formatting
from tune_nas.storage.masking import mask_url
from tune_nas.storage.trials_dir import RemoteTrialsDir, TrialsDirError


@pytest.mark.parametrize("value, digits, shown", [
    (0.99304, 4, "0.9930"), (0.0, 4, "0.0000"), (2, 4, "2"), ("k3e6", 4, "k3e6"),
    (0.0004, 4, "0.0004"),  # still visible with 4 decimals
    (3.2e-05, 4, "3.2e-05"),  # would show as 0.0000
    (None, 4, "-"), (math.nan, 4, "-"), (math.inf, 4, "-"), (12.25, 1, "12.2"),
])
def test_number(value, digits, shown):
    assert formatting.number(value, digits) == shown


def test_number_says_what_is_missing_as_asked():
    assert formatting.number(math.nan, 3, missing="nan") == "nan"
    assert formatting.number(None, missing="–") == "–"


@pytest.mark.parametrize("value, shown", [
    (950, "950"), (5000, "5.0k"), (12345, "12.3k"), (6.7e6, "6.70M"), (1.2e9, "1.20G"),
    (None, "-"), ("", "-"), (math.nan, "-"),
])
def test_count(value, shown):
    assert formatting.count(value) == shown


def test_percent_significant_and_rounded():
    assert formatting.percent(0.8879) == "88.79 %" and formatting.percent(None, "–") == "–"
    assert [formatting.significant(v) for v in (0.00316, 0.01, 1e-05, 0.0, 128, "adamw")] == [
        "0.00316", "0.01", "1.0e-05", "0", "128", "adamw"]
    assert formatting.rounded(0.123456789) == 0.123457
    assert [formatting.rounded(v) for v in (None, math.nan, True, "x")] == [None] * 4


def test_one_short_config_for_the_terminal_and_the_study():
    config = {"width": 32, "lr": 0.003162, "dropout": 0.159, "optimizer": "adamw",
              "trial_number": 7, "trial_run": "007_x"}
    assert formatting.short_config(config) == "dropout=0.159 lr=0.00316 optimizer=adamw width=32"
    from tune_nas.record import console

    assert console.short_config is formatting.short_config


def test_first_line_quotes_the_root_cause():
    try:
        try:
            raise OSError("disk I/O error\nmore detail")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert formatting.first_line(exc) == "disk I/O error"
    assert formatting.first_line(ValueError("")) == "ValueError"


@pytest.mark.parametrize("url, shown", [
    ("postgresql://tune_nas:s3cr/t@db.example.org:5432/tune_nas",
     "postgresql://tune_nas:***@db.example.org:5432/tune_nas"),
    ("postgresql://tune_nas@db/x?sslmode=require&password=s3cr/t", "postgresql://tune_nas@db/x?sslmode=require&password=***"),
    ("sqlite:///trials/x/optuna.db", "sqlite:///trials/x/optuna.db"),
    ("user:s3cr/t@host", "host"),  # not a URL: only what follows the credentials
    ("tune_nas at the database server", "tune_nas at the database server"),
])
def test_mask_url_hides_the_password(url, shown):
    assert mask_url(url) == shown and "s3cr/t" not in mask_url(url)


def test_mask_url_can_hide_the_whole_user_info():
    assert mask_url("s3://AKIAKEY:s3cr/t@bucket/trials", hide_user=True) == "s3://***@bucket/trials"
    assert mask_url("s3://bucket/trials", hide_user=True) == "s3://bucket/trials"
    with pytest.raises(TrialsDirError) as info:
        RemoteTrialsDir.parse("s3://AKIAKEY:s3cr/t@bucket/trials")
    assert str(info.value).startswith("--trials-dir s3://***@bucket/trials: holds credentials")
