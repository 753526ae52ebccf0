"""The project file: every table typed and validated once, bad values as one line naming the fix."""

import pytest
from click.testing import CliRunner

from budget.config import TABLES, ConfigError, Models, ProjectConfig, load_config
from budget.controller.cli import cli
from budget.study.tiny import tiny_tables, write_project

# (table, key, value, what the message must say): wrong types, out of range, unknown words
BAD = [
    ("annotation", "batch_size", "fifty", "[annotation] batch_size = 'fifty'"),
    ("annotation", "batch_size", -5, "must be an int >= 1"),
    ("annotation", "batch_size", 2.5, "must be an int >= 1"),
    ("annotation", "selection", "loudest", "one of random, entropy, margin"),
    ("annotation", "connector", "mturk", "one of simulated, labelstudio, argilla"),
    ("annotation", "auto_approve_under", 25.0, "money is never a binary float"),
    ("annotation", "suggestions", "yes", "must be true or false"),
    ("split", "seed_size", 0, 'an int >= 1 or "all"'),
    ("split", "seed_size", "some", 'an int >= 1 or "all"'),
    ("split", "dev_fraction", 0.9, "a fraction between 0.05 and 0.5"),
    ("split", "test_size", -3, "an int >= 0 (items) or a fraction in [0, 1)"),
    ("models", "max_length", 4, "an int >= 8"),
    ("models", "student_lr", 0, "a number > 0"),
    ("models", "precision", "fp8", "one of auto, bf16, fp32"),
    ("models", "keep", 0, 'an int >= 1 or "all"'),
    ("models", "class_weight", "inverse", "one of auto, balanced, none"),
    ("models", "select", "median", "one of best, last"),
    ("prices", "per_label", "-1", 'a dollar amount > 0 as a string, like "0.364"'),
    ("prices", "overlap", 0, "an int >= 1"),
    ("prices", "compute", "abacus", "one of flops, device-hours"),
    ("annotators", "error_rate", 1.5, "a fraction in [0, 1)"),
    ("annotators", "latency_s", [120.0, 30.0], "[min, max] seconds with 0 <= min <= max"),
    ("policy", "name", "greedy", "annotate, distill, split:F (F in [0, 1]) or adaptive"),
    ("policy", "min_points_per_100usd", -1, "a number >= 0"),
    ("connector", "timeout", 0, "a number > 0"),
    ("split", "dev_share", 0.9, "a fraction between 0 and 0.5"),
    ("split", "dev_size", "lots", "an int >= 0"),
    ("annotation", "min_batch", -2, "an int >= 0"),
    ("policy", "stop_confidence", 1.5, "a probability in [0.5, 1)"),
    ("llm", "url", "127.0.0.1:8080/v1", 'an http(s) URL ending in /v1, or "" to run the model in this process'),
    ("llm", "input_per_million", 0.15, "money is never a binary float"),
    ("llm", "retries", 50, "an int from 0 to 10"),
    ("llm", "examples", -1, "an int >= 0"),
    ("models", "teacher_lora_rank", -4, "an int >= 0"),
    ("compute", "processes", 0, "an int >= 1"),
    ("compute", "strategy", "zero3", "one of ddp, fsdp"),
    ("compute", "machine_rank", 2, "an int from 0 to machines - 1"),
    ("compute", "main_port", 70000, "a port 1-65535"),
]


@pytest.fixture
def project(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "rain today", "label": "weather"}\n' * 20)
    return tmp_path, tiny_tables(data, tmp_path / "student", tmp_path / "teacher")


@pytest.mark.parametrize(("table", "key", "value", "says"), BAD, ids=[f"{t}.{k}={v!r}" for t, k, v, _ in BAD])
def test_a_bad_value_is_one_line_exit_2_naming_table_key_value_and_fix_and_nothing_is_written(
        table, key, value, says, project):
    root, tables = project
    tables.setdefault(table, {})[key] = value
    path = write_project(root / "project.toml", tables)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.count("\n") == 0 and f"[{table}] {key} = {value!r}" in message and says in message
    result = CliRunner().invoke(cli, ["--spend", "10", "--config", str(path), "--run-dir", str(root / "run")])
    assert result.exit_code == 2 and result.output == f"Error: {message}\n"
    assert not (root / "run").exists()


def test_every_table_and_key_has_a_default_and_the_defaults_validate(project):
    root, tables = project
    config = load_config(write_project(root / "project.toml", {"task": tables["task"]}))
    for name, cls in TABLES.items():
        assert getattr(config, name) == cls()
        assert all(ok for _, ok, _ in cls().checks()), name


def test_a_config_round_trips_through_the_ledgers_json(project):
    root, tables = project
    config = load_config(write_project(root / "project.toml", tables))
    again = load_config(raw=config.to_dict())
    assert isinstance(again, ProjectConfig)
    assert {n: getattr(again, n) for n in TABLES} == {n: getattr(config, n) for n in TABLES}


def test_replace_changes_a_table_and_validates_it(project):
    root, tables = project
    config = load_config(write_project(root / "project.toml", tables))
    scaled = config.replace(prices={"phase_scale": {"soft_labels": 100.0}})
    assert scaled.prices.phase_scale == {"soft_labels": 100.0} and config.prices.phase_scale == {}
    with pytest.raises(ConfigError, match="unknown phase 'soft'"):
        config.replace(prices={"phase_scale": {"soft": 2}})


@pytest.mark.parametrize(("metric", "setting", "trained"), [
    ("macro_f1", "auto", "balanced"), ("accuracy", "auto", "none"), ("macro_f1", "none", "none"),
    ("accuracy", "balanced", "balanced")])
def test_class_weights_are_balanced_where_the_metric_weighs_every_class_alike(metric, setting, trained):
    for role in ("student", "teacher", "distill"):
        assert Models(class_weight=setting).train_config(role, seed=0, metric=metric).class_weight == trained


@pytest.mark.parametrize("setting", ["last", "best"])
def test_select_picks_the_students_kept_model_and_a_teacher_keeps_its_best_evaluation(setting):
    models = Models(select=setting)
    assert models.train_config("student", seed=0, metric="accuracy").select == setting
    assert models.train_config("distill", seed=0, metric="accuracy").select == setting
    assert models.train_config("teacher", seed=0, metric="accuracy").select == "best"


def test_an_llm_needs_its_token_prices_and_they_are_exact(project):
    root, tables = project
    tables["llm"] = {"model": "smollm2-135m"}
    with pytest.raises(ConfigError, match=r"\[llm\] input_per_million = '' in .* \(required when model is set\)"):
        load_config(write_project(root / "project.toml", tables))
    tables["llm"] |= {"input_per_million": "0.15", "output_per_million": "0.60"}
    config = load_config(write_project(root / "project.toml", tables))
    price = config.llm.token_price()
    assert config.llm.enabled and (str(price.input_micro), str(price.output_micro)) == ("0.15", "0.60")
    assert not load_config(write_project(root / "bare.toml", {"task": tables["task"]})).llm.enabled


def test_changing_which_evaluation_a_student_keeps_leaves_a_run_folder_resumable(project):
    from budget.controller.run_init import config_hash

    root, tables = project
    config = load_config(write_project(root / "project.toml", tables))
    best, last = (config.replace(models={"select": s}) for s in ("best", "last"))
    assert config_hash(best) == config_hash(last)
    assert config_hash(config.replace(models={"max_length": 64})) != config_hash(config)
