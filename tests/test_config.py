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
