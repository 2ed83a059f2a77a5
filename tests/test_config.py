"""Configuration: the public keys validate, and mistakes name the key and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from framewatch.cli import app
from framewatch.config import ConfigError, load_settings
from tests.conftest import DEMO_CONFIG


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_demo_config_loads_with_its_public_keys():
    settings = load_settings(DEMO_CONFIG)
    assert settings.warehouse.path == Path("data/framewatch.duckdb")
    assert settings.schedule.cron == "0 2 * * *"
    assert [(s.name, s.type) for s in settings.sources][:1] == [("seed-threads", "jsonl")]
    assert settings.sources[0].options()["path"] == "config/demo/seed_posts.jsonl"
    assert settings.warehouse_path == DEMO_CONFIG.parent.parent / "data" / "framewatch.duckdb"


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, '[warehouse]\npath = "x.duckdb"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=r"warehouse\.colour: unknown key"):
        load_settings(path)


def test_bad_cron_is_named(tmp_path):
    path = write(tmp_path, '[schedule]\ncron = "every night"\n')
    with pytest.raises(ConfigError, match=r"schedule\.cron: must have five fields"):
        load_settings(path)


def test_duplicate_source_names_are_rejected(tmp_path):
    source = '[[sources]]\nname = "a"\ntype = "jsonl"\npath = "x.jsonl"\n'
    with pytest.raises(ConfigError, match="name 'a' is used twice"):
        load_settings(write(tmp_path, source + source))


def test_source_without_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.0\.type: Field required"):
        load_settings(write(tmp_path, '[[sources]]\nname = "a"\n'))


def test_encoder_precision_accepts_auto_fp32_bf16_only(tmp_path):
    assert load_settings(write(tmp_path, '[analysis]\nencoder_precision = "fp32"\n')).analysis.encoder_precision == "fp32"
    with pytest.raises(ConfigError, match=r"analysis\.encoder_precision"):
        load_settings(write(tmp_path, '[analysis]\nencoder_precision = "fp16"\n'))


def test_auto_precision_means_bf16_only_where_the_cpu_has_it(monkeypatch):
    from nlp import embed

    monkeypatch.setattr(embed, "native_bf16", lambda: True)
    assert embed.resolve_precision("auto") == "bf16"
    assert embed.resolve_precision("fp32") == "fp32"
    monkeypatch.setattr(embed, "native_bf16", lambda: False)
    assert embed.resolve_precision("auto") == "fp32"
    assert embed.resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="unknown encoder precision 'int8'"):
        embed.resolve_precision("int8")


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    path = write(tmp_path, "[warehouse\n")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML"):
        load_settings(path)


def test_cli_exits_2_with_one_clear_line_on_config_error(tmp_path):
    path = write(tmp_path, '[report]\ngranularities = ["fortnight"]\n')
    result = CliRunner().invoke(app, ["init", "--config", str(path)])
    assert result.exit_code == 2
    assert "report.granularities: unknown granularity 'fortnight'" in result.output
    assert not (tmp_path / "data").exists()


def test_cli_exits_2_when_config_file_is_missing(tmp_path):
    result = CliRunner().invoke(app, ["init", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output


def commented_source_blocks(text: str) -> list[dict]:
    """The `# [[sources]]` examples in a config, uncommented and parsed."""
    import re
    import tomllib

    blocks, current = [], None
    for line in text.splitlines():
        body = line[2:] if line.startswith("# ") else None
        if body == "[[sources]]":
            current = []
            blocks.append(current)
        elif current is not None and body is not None and re.match(r"^\w+ = ", body):
            current.append(body)
        else:
            current = None
    return [tomllib.loads("\n".join(b)) for b in blocks]


def test_demo_config_shows_a_valid_commented_example_of_every_network_source():
    from flows.context import CollectorContext
    from flows.sources import build_collector, source_types
    from framewatch.config import HttpConfig

    examples = commented_source_blocks(DEMO_CONFIG.read_text())
    types = {e["type"] for e in examples}
    assert types == set(source_types()) - {"jsonl", "csv"}
    for example in examples:
        options = {k: v for k, v in example.items() if k not in ("name", "type")}
        build_collector(example["name"], example["type"], options, CollectorContext(HttpConfig(), DEMO_CONFIG.parent))
