import pytest

from mmkgrec.config import load_config
from mmkgrec.errors import ConfigError


def test_layers_merge_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("learning_rate: 0.01\nn_layers: 3\n")
    # defaults: lr 0.001; model LightGCN: n_layers 2; dataset amazon-book: split given;
    # file: lr 0.01, n_layers 3; --set: n_layers 4
    c = load_config("LightGCN", "amazon-book", f, ["n_layers=4", "valid_metric=NDCG@20"])
    assert c["learning_rate"] == 0.01 and c["n_layers"] == 4 and c["split"] == "given"
    assert c["reg_weight"] == 1e-5 and c.source("n_layers") == "--set"
    assert c["valid_metric"] == "ndcg@20"  # any case accepted, stored canonical
    assert load_config("BPR", "ml-100k")["split"] == "random_ratio"


@pytest.mark.parametrize("override,fragment", [
    ("epoch=5", "config key 'epoch' (from --set): unknown key; did you mean epochs"),
    ("n_layers=2", "config key 'n_layers' (from --set): unknown key"),  # not a BPR key
    ("learning_rate=fast", "config key 'learning_rate' (from --set): expected float"),
    ("epochs=2.5", "config key 'epochs' (from --set): expected int"),
    ("split=by_time", "config key 'split' (from --set): expected one of"),
    ("valid_metric=auc@10", "config key 'valid_metric'"),
    ("learning_rate=0", "must be > 0"),
    ("novalue", "expected key=value"),
])
def test_bad_keys_and_values_are_named(override, fragment):
    with pytest.raises(ConfigError) as e:
        load_config("BPR", "ml-100k", overrides=[override])
    assert fragment in str(e.value)


def test_file_errors_name_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("embeding_size: 32\n")
    with pytest.raises(ConfigError, match=r"'embeding_size' \(from .*bad.yaml\).*embedding_size"):
        load_config("BPR", None, f)
    with pytest.raises(ConfigError, match="unknown model 'NoSuch'"):
        load_config("NoSuch")


def test_exponent_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads 1e-5 as a string; float keys accept it from files and --set alike
    f = tmp_path / "c.yaml"
    f.write_text("reg_weight: 1e-4\n")
    assert load_config("LightGCN", None, f)["reg_weight"] == 1e-4
    assert load_config("LightGCN", overrides=["reg_weight=1e-05"])["reg_weight"] == 1e-5
    with pytest.raises(ConfigError, match="reg_weight"):
        load_config("LightGCN", overrides=["reg_weight=1e-5x"])


def test_reading_unknown_key_raises():
    c = load_config("BPR")
    with pytest.raises(ConfigError):
        c["nope"]


# ---- the schema: every key declared once, every value checked --------------------------------
import yaml  # noqa: E402
from pathlib import Path  # noqa: E402

from mmkgrec.cli import main  # noqa: E402
from mmkgrec.config import (  # noqa: E402
    config_value,
    load_run_config,
    model_config_names,
    reference_markdown,
)
from mmkgrec.config_schema import KEYS, keys_for, model_names  # noqa: E402

CONFIGS = Path(__import__("mmkgrec").__file__).parent / "configs"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override,key,fragment", [
    ("train_batch_size=0", "train_batch_size", "must be >= 1, got 0"),
    ("eval_step=0", "eval_step", "must be >= 1"),
    ("num_neg=0", "num_neg", "must be >= 1"),
    ("metrics=[foo]", "metrics", "Unknown ranking metric 'foo'"),
    ("metrics=[]", "metrics", "at least 1"),
    ("learning_rate=.nan", "learning_rate", "finite"),
    ("learning_rate=.inf", "learning_rate", "finite"),
    ("weight_decay=-1", "weight_decay", "must be >= 0"),
    ("topk=[0]", "topk", "must be >= 1"),
    ("topk=[10, ten]", "topk", "element 1"),
    ("rating_threshold=abc", "rating_threshold", "expected null or float"),
    ("valid_ratio=2", "valid_ratio", "must be < 1"),
    ("sampled_negatives=0", "sampled_negatives", "must be >= 1"),
    ("embedding_size=0", "embedding_size", "must be >= 1"),
    ("epochs=-1", "epochs", "must be >= 0"),
    ("epochs=true", "epochs", "expected int"),
    ("show_progress=1", "show_progress", "expected bool"),
    ("split_ratio=[0.8, 0.2]", "split_ratio", "expected 3 items"),
    ("split_ratio=[0, 0.5, 0.5]", "split_ratio", "train share"),
    ("split_ratio=[0.8, -0.1, 0.3]", "split_ratio", "must be >= 0"),
    ("seed=null", "seed", "null is not allowed"),
    ("device=gpu", "device", "cpu, cuda, cuda:N or mps"),
    ("device=cuda:x", "device", "cpu, cuda, cuda:N or mps"),
    ("dedup=latest", "dedup", "expected one of"),
    ("require_item_content=[audio]", "require_item_content", "expected one of"),
    ("kg_domain_columns=[class, class]", "kg_domain_columns", "distinct"),
    ("data_path=''", "data_path", "must not be empty"),
    ("valid_metric=foo@10", "valid_metric", "Unknown metric"),
    ("valid_metric=auc", "valid_metric", "not computed under eval_protocol 'full'"),
    ("subsample_users=0", "subsample_users", "must be >= 1"),
    ("model=BPR", "model", "set by the model (--model)"),
    ("reg_weight=1.0e-4", None, None),  # accepted
])
def test_every_value_is_checked_against_its_key(override, key, fragment):
    if key is None:
        load_config("BPR", "ml-100k", overrides=[override])
        return
    with pytest.raises(ConfigError) as e:
        load_config("BPR", "ml-100k", overrides=[override])
    msg = str(e.value)
    assert msg.startswith(f"config key '{key}' (from --set") and fragment in msg, msg
    assert "\n" not in msg


def test_joint_rule_names_where_each_value_came_from():
    with pytest.raises(ConfigError, match=r"'valid_metric' \(from defaults\).*task 'ctr'.*task "
                                          r"from eval_protocol in --set"):
        load_config("KGCN", "lastfm-kg", overrides=["eval_protocol=ctr"])
    with pytest.raises(ConfigError, match="'recall@10' is not computed under eval_protocol "
                                          "'sampled'"):
        load_config("BPR", overrides=["eval_protocol=sampled", "valid_metric=recall@10"])
    ok = load_config("KGCN", "lastfm-kg", overrides=["eval_protocol=ctr", "valid_metric=AUC"])
    assert ok["valid_metric"] == "auc"


def test_a_key_of_another_model_is_unknown_and_says_whose_it_is(tmp_path):
    with pytest.raises(ConfigError, match=r"'hidden_size' \(from --set\): unknown key for model "
                                          r"BPR; it is a key of GRU4Rec, SASRec"):
        load_config("BPR", overrides=["hidden_size=8"])
    assert set(keys_for("GRU4Rec")) - set(keys_for("Pop")) >= {"hidden_size", "max_seq_length"}
    assert "hidden_size" not in load_config("BPR")


def test_null_only_where_allowed_and_lists_from_text():
    c = load_config("VBPR", overrides=["visual_size=null", "text_fields=title, genre",
                                       "modalities=[image]"])
    assert c["visual_size"] is None and c["text_fields"] == ["title", "genre"]
    assert c["modalities"] == ["image"]
    with pytest.raises(ConfigError, match="visual_size.*must be >= 1"):
        load_config("VBPR", overrides=["visual_size=0"])
    with pytest.raises(ConfigError, match="'modalities'.*distinct"):
        load_config("VBPR", overrides=["modalities=[text, text]"])


def test_a_run_config_is_blamed_on_its_file(tmp_path):
    good = load_config("BPR", "ml-100k", overrides=["learning_rate=0.01"]).to_dict()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(good))
    c = load_run_config(path, device="cpu")
    assert c.to_dict() == good and c.source("learning_rate") == str(path)
    assert c.source("device") == "--device"
    path.write_text(yaml.safe_dump({**good, "train_batch_size": 0}))
    with pytest.raises(ConfigError, match=rf"'train_batch_size' \(from {path}\): must be >= 1"):
        load_run_config(path)
    path.write_text(yaml.safe_dump({**good, "hidden_size": 8}))
    with pytest.raises(ConfigError, match=rf"'hidden_size' \(from {path}\): unknown key"):
        load_run_config(path)
    with pytest.raises(ConfigError, match=r"'device' \(from --device\)"):
        load_run_config(_write(tmp_path, good), "gpu")
    bare = dict(good)
    del bare["model"]
    with pytest.raises(ConfigError, match="'model'.*missing"):
        load_run_config(_write(tmp_path, bare))
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_run_config(tmp_path / "bad.yaml")


def _write(folder: Path, values: dict) -> Path:
    p = folder / "run-config.yaml"
    p.write_text(yaml.safe_dump(values))
    return p


def test_bad_value_in_a_layer_file_stops_training_before_anything_is_written(tmp_path, capsys):
    f = tmp_path / "variant.yaml"
    f.write_text("learning_rate: .nan\n")
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"mmkgrec: error: config key 'learning_rate' (from {f}): must be a finite "
                   "number, got nan")
    assert not out.exists() and not out.with_name("run.partial").exists()


# ---- the packaged files only set values ------------------------------------------------------
def test_schema_defaults_pass_their_own_checks():
    for key in KEYS.values():
        assert key.validate(key.default) == key.default, key.name
        assert key.doc and "\n" not in key.doc, key.name


def test_models_of_the_schema_are_the_model_configs_and_the_registry():
    from mmkgrec.models import registered_models

    assert set(model_names()) <= set(model_config_names())
    assert set(model_config_names()) == set(registered_models())


def test_packaged_files_set_only_their_keys_and_never_repeat_a_default():
    for path in sorted((CONFIGS / "model").glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        known = keys_for(path.stem)
        for k, v in values.items():
            assert k in known, f"{path.name}: {k} is not a key of {path.stem}"
            assert known[k].validate(v) != known[k].default, f"{path.name}: {k} repeats the default"
    for path in sorted((CONFIGS / "dataset").glob("*.yaml")):
        for k, v in (yaml.safe_load(path.read_text()) or {}).items():
            assert k in KEYS and KEYS[k].models is None, f"{path.name}: {k} is not a general key"
            assert KEYS[k].validate(v) != KEYS[k].default, f"{path.name}: {k} repeats the default"


def test_every_model_dataset_and_variant_resolves():
    models = model_config_names()
    datasets = [None] + sorted(p.stem for p in (CONFIGS / "dataset").glob("*.yaml"))
    for m in models:
        for d in datasets:
            load_config(m, d)
    for variant in sorted((CONFIGS / "variant").glob("*.yaml")):
        assert any(_resolves(m, variant) for m in models), variant.name


def _resolves(model, file) -> bool:
    try:
        load_config(model, None, file)
        return True
    except ConfigError:
        return False


def test_config_value_falls_back_to_the_schema():
    assert config_value(None, "kg_merge") == "auto"
    assert config_value({"kg_merge": "both"}, "kg_merge") == "both"
    assert config_value(load_config("BPR"), "hidden_size") == 64  # another model's key
    first = config_value(None, "kg_domain_columns")
    first.append("x")
    assert config_value(None, "kg_domain_columns") == ["class", "release_year"]  # a copy
    with pytest.raises(ConfigError, match="'no_such_key'"):
        config_value(None, "no_such_key")


def test_reference_page_is_generated_from_the_schema():
    page = REPO / "docs" / "CONFIG.md"
    assert page.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/CONFIG.md is out of date: python -m mmkgrec.config docs/CONFIG.md")
    for name in KEYS:
        assert f"| `{name}` |" in page.read_text(encoding="utf-8")
