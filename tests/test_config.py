"""Config: defaults, TOML files (beside the catalog, --config, pyproject.toml), overrides,
and the errors a user gets for a mistyped file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lumina_plugin.config import CONFIG_FILE_NAME, Config, ConfigError
from lumina_plugin.model import ALGORITHMS


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults ------------------------------------------------------------------------------

def test_defaults() -> None:
    cfg = Config()
    t = cfg.thresholds
    assert t.radii() == (t.ahash, t.dhash, t.phash, t.whash) == (8, 10, 10, 8)
    assert len(t.radii()) == len(ALGORITHMS)
    assert 1 <= t.min_agreeing <= len(ALGORITHMS)
    assert max(t.radii()) < t.veto <= 64
    assert t.burst_seconds > 0 and 0 <= t.burst_identical < min(t.radii())
    # the photo formats a library holds are all walked
    assert {".jpg", ".jpeg", ".png", ".webp", ".heic", ".tif"} <= set(cfg.extensions)
    assert all(e.startswith(".") and e == e.lower() for e in cfg.extensions)
    assert cfg.max_pixels > 100_000_000  # a 100 Mpx medium-format photo is not a bomb
    assert cfg.batch_size >= 1 and cfg.follow_symlinks is False
    # lossless/original formats outrank exports
    rank = cfg.keeper.format_rank
    assert rank["PNG"] > rank["JPEG"] > rank["WEBP"]
    # tag names are namespaced, distinct, and removable as a set
    roles = cfg.tags.roles()
    from lumina_plugin.grouping import RELATIONS
    assert set(roles) == {"keeper", *RELATIONS}  # one tag per role and per relation
    assert len(set(roles.values()) | {cfg.tags.parent}) == len(roles) + 1
    assert all(name.startswith("lumina-dedup:") for name in [*roles.values(), cfg.tags.parent])


def test_default_instances_do_not_share_mutable_state() -> None:
    a, b = Config(), Config()
    assert a == b
    assert a.keeper.format_rank is not b.keeper.format_rank
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.max_pixels = 1  # type: ignore[misc]


def test_load_without_any_file_gives_defaults(tmp_path: Path) -> None:
    assert Config.load() == Config()
    assert Config.load(catalog_dir=tmp_path) == Config()


# -- TOML files ------------------------------------------------------------------------------

def test_file_beside_the_catalog_overrides_thresholds(tmp_path: Path) -> None:
    write(tmp_path / CONFIG_FILE_NAME, """
        max_pixels = 100_000_000
        [thresholds]
        ahash = 4
        phash = 12
        min_agreeing = 3
        burst_seconds = 5
    """)
    cfg = Config.load(catalog_dir=tmp_path)
    assert cfg.thresholds.radii() == (4, 10, 12, 8)  # dhash/whash keep their defaults
    assert cfg.thresholds.min_agreeing == 3
    assert cfg.thresholds.burst_seconds == 5.0 and isinstance(cfg.thresholds.burst_seconds, float)
    assert cfg.max_pixels == 100_000_000
    assert cfg.tags == Config().tags and cfg.keeper == Config().keeper


def test_explicit_path_wins_over_the_file_beside_the_catalog(tmp_path: Path) -> None:
    write(tmp_path / CONFIG_FILE_NAME, "[thresholds]\nahash = 3\n")
    explicit = write(tmp_path / "elsewhere" / "strict.toml", "[thresholds]\nahash = 1\n")
    assert Config.load(explicit, catalog_dir=tmp_path).thresholds.ahash == 1


def test_pyproject_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", """
        [project]
        name = "my-photos"

        [tool.black]
        line-length = 100

        [tool.lumina-dedup]
        batch_size = 64
        follow_symlinks = true
        extensions = ["JPG", ".Png", "cr3"]

        [tool.lumina-dedup.thresholds]
        dhash = 6

        [tool.lumina-dedup.tags]
        keeper = "dedup:best"
    """)
    cfg = Config.load(path)
    assert cfg.batch_size == 64 and cfg.follow_symlinks is True
    assert cfg.extensions == (".jpg", ".png", ".cr3")
    assert cfg.thresholds.dhash == 6 and cfg.thresholds.ahash == Config().thresholds.ahash
    assert cfg.tags.keeper == "dedup:best" and cfg.tags.roles()["keeper"] == "dedup:best"


def test_pyproject_without_our_table_gives_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 90\n')
    assert Config.load(path) == Config()


def test_keeper_format_rank_merges_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "ranks.toml", "[keeper.format_rank]\nWEBP = 5\nJXL = 4\n")
    rank = Config.load(path).keeper.format_rank
    defaults = Config().keeper.format_rank
    assert rank["WEBP"] == 5 and rank["JXL"] == 4
    assert {k: v for k, v in rank.items() if k not in ("WEBP", "JXL")} == \
        {k: v for k, v in defaults.items() if k != "WEBP"}
    assert defaults["WEBP"] == 1  # the defaults themselves are untouched


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    """As the CLI flags / host config do: from_mapping(overrides, base=file config)."""
    base = Config.load(write(tmp_path / "c.toml", """
        [thresholds]
        ahash = 5
        [keeper.format_rank]
        JXL = 4
    """))
    cfg = Config.from_mapping({"thresholds": {"dhash": 7}, "keeper": {"format_rank": {"GIF": 0}}}, base)
    assert (cfg.thresholds.ahash, cfg.thresholds.dhash) == (5, 7)
    assert cfg.keeper.format_rank["JXL"] == 4 and cfg.keeper.format_rank["GIF"] == 0
    assert cfg.keeper.format_rank["PNG"] == Config().keeper.format_rank["PNG"]


def test_replace_derives_a_new_config() -> None:
    base = Config()
    cfg = base.replace(batch_size=8)
    assert cfg.batch_size == 8 and base.batch_size == Config().batch_size


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("max_pixel = 5\n", "max_pixel"),
    ("[thresholds]\nahsh = 5\n", "thresholds.ahsh"),
    ("[tags]\nkeep = 'x'\n", "tags.keep"),
    ("[threshold]\nahash = 5\n", "threshold"),
])
def test_unknown_key_is_an_error_naming_it(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / CONFIG_FILE_NAME, text)
    with pytest.raises(ConfigError) as err:
        Config.load(catalog_dir=tmp_path)
    assert key in str(err.value) and str(path) in str(err.value)


def test_unknown_key_in_pyproject_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.lumina-dedup.thresholds]\nphash_ = 3\n")
    with pytest.raises(ConfigError, match="thresholds.phash_"):
        Config.load(path)


@pytest.mark.parametrize("text, key", [
    ('[thresholds]\nahash = "8"\n', "thresholds.ahash"),
    ("[thresholds]\nahash = 8.5\n", "thresholds.ahash"),
    ("[thresholds]\nahash = true\n", "thresholds.ahash"),
    ('[thresholds]\nburst_seconds = "2s"\n', "thresholds.burst_seconds"),
    ("follow_symlinks = 1\n", "follow_symlinks"),
    ('batch_size = "many"\n', "batch_size"),
    ("[tags]\nkeeper = 5\n", "tags.keeper"),
    ("[keeper]\nformat_rank = 3\n", "keeper.format_rank"),
    ("thresholds = 8\n", "thresholds"),
    ("[hashing]\nprefetch_ahead = true\n", "hashing.prefetch_ahead"),
])
def test_wrong_type_is_an_error(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as err:
        Config.load(path)
    assert key in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("text, key", [
    ("[thresholds]\nphash = -1\n", "thresholds.phash"),
    ("[thresholds]\nburst_seconds = -0.5\n", "thresholds.burst_seconds"),
    ("max_pixels = -1\n", "max_pixels"),
    ("batch_size = -10\n", "batch_size"),
    ("[hashing]\nprefetch_ahead = -1\n", "hashing.prefetch_ahead"),
])
def test_negative_is_an_error(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match="negative") as err:
        Config.load(path)
    assert key in str(err.value)


def test_prefetch_ahead_is_read_from_the_file(tmp_path: Path) -> None:
    assert Config.load(write(tmp_path / "c.toml", "[hashing]\nprefetch_ahead = 2\n")).hashing.prefetch_ahead == 2


def test_broken_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / CONFIG_FILE_NAME, "[thresholds\nahash = 5\n")
    with pytest.raises(ConfigError) as err:
        Config.load(catalog_dir=tmp_path)
    assert str(path) in str(err.value)


def test_missing_explicit_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Config.load(tmp_path / "nope.toml")
    assert "nope.toml" in str(err.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- values that must be refused, not misread -------------------------------------------

@pytest.mark.parametrize("text", ['extensions = "jpg"\n', "extensions = 5\n"])
def test_extensions_must_be_a_list_of_strings(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="extensions"):
        Config.load(write(tmp_path / "c.toml", text))


def test_format_rank_values_must_be_integers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format_rank"):
        Config.load(write(tmp_path / "c.toml", '[keeper.format_rank]\nJPEG = "high"\n'))


def test_format_rank_keys_are_case_insensitive(tmp_path: Path) -> None:
    rank = Config.load(write(tmp_path / "c.toml", "[keeper.format_rank]\nwebp = 5\n")).keeper.format_rank
    assert rank.get("WEBP") == 5  # what grouping.keeper looks up for a WebP file


@pytest.mark.parametrize("text", ["[thresholds]\nmin_agreeing = 0\n", "[thresholds]\nmin_agreeing = 5\n",
                                  "batch_size = 0\n"])
def test_out_of_range_values_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="must be between"):
        Config.load(write(tmp_path / "c.toml", text))
