"""Run one RecBole 1.2.1 model on a split exported by mmkgrec and write one JSON result.

Runs INSIDE the RecBole venv (``bash benchmarks/recbole_env.sh`` builds it and prints its python);
it never imports mmkgrec::

    PY=$(bash benchmarks/recbole_env.sh)
    $PY benchmarks/recbole_runner.py --data-dir DIR --dataset NAME --model MODEL --out result.json \
        [--set key=value ...] [--work-dir DIR]

``DIR/NAME/`` holds RecBole benchmark files: ``NAME.train.inter``, ``NAME.valid.inter``,
``NAME.test.inter`` (typed header ``user_id:token item_id:token rating:float timestamp:float``)
and, for knowledge-graph models, ``NAME.kg`` and ``NAME.link``. Sequential models read
pre-augmented files instead (``mmkgrec data export-recbole NAME --out DIR --sequential``): header
``user_id:token item_id_list:token_seq item_id:token``, one row per next-item sample (the history
of at most MAX_ITEM_LIST_LENGTH items, then the target); the runner tells the two kinds apart by
the train file's header. ``--set`` values are parsed as
JSON when they parse (``epochs=5``, ``learning_rate=0.01``, ``eval_args={...}``), else kept as
strings; they override the defaults below and go straight into RecBole's ``config_dict``.

RecBole is configured so that its data equals ours: with ``benchmark_filename`` RecBole skips its
whole filtering stage (no k-core, no duplicate removal, no value filter) and takes the three files
as the split, in file order; the vocabulary is built over train+valid+test together, so users and
items seen only in valid/test are known. Filtering settings are set to "keep everything" anyway,
and no rating threshold is set. Evaluation is full ranking: the valid pass masks each user's train
items, the test pass masks train+valid items. For sequential models (RecBole's convention) nothing
is masked and every valid / test row is one target: metrics are means over rows, not users. The
rows RecBole loads are checked against the files' row counts.

Per-user test metrics are recomputed from the best model with RecBole's own full-sort scoring and
masking (``Trainer._full_sort_batch_eval``) and RecBole's metric classes (``metric_info``); their
means are asserted equal to RecBole's reported test figures.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import recbole_shim  # noqa: E402,F401  (must precede recbole)

# RecBole 1.2.1 on pandas 2.x / torch 2.x / setuptools 80 floods stderr with deprecation notices
# (chained fillna inplace, amp.GradScaler, pkg_resources); they do not change results.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")

METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
TOPK = [10, 20]
BENCHMARK_FILES = ["train", "valid", "test"]
INTER_COLS = ["user_id", "item_id", "rating", "timestamp"]
SEQ_INTER_COLS = ["user_id", "item_id_list", "item_id"]  # pre-augmented sequential files
# sequential full-sort evaluation batches hold this many rows (one target each)
EVAL_ROWS = 4096
# Full-sort evaluation batches: this many users for models that score users against all items with
# a matrix product; models whose full_sort_predict expands every (user, item) pair through the
# network (KGCN, KGNNLS) or that have none (RecBole then calls predict on all pairs) get about
# PAIR_BUDGET pairs per batch instead: on ML-100K KGCN evaluates in ~1.3 s with 16 users per batch
# against ~21 s and 6.5 GB peak memory with all 943 users in one batch (identical metrics).
EVAL_USERS = 4096
PAIR_BUDGET = 1 << 16
PAIRWISE_FULL_SORT = {"KGCN", "KGNNLS"}
# Per-user means must agree with RecBole's figures to this tolerance.
TOL = 1e-4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder that holds NAME/ with the benchmark files")
    p.add_argument("--dataset", required=True, help="dataset name NAME (file prefix)")
    p.add_argument("--model", required=True, help="RecBole model name, e.g. BPR, LightGCN, CKE, KGCN")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="RecBole config override, value JSON-parsed when possible (repeatable)")
    p.add_argument("--work-dir", default=None,
                   help="where RecBole writes its log/, log_tensorboard/ and checkpoint "
                        "(default: a temporary folder, removed afterwards)")
    return p.parse_args(argv)


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def inter_header(path: str) -> list[str]:
    """Field names of an atomic file's typed header (``user_id:token`` -> ``user_id``)."""
    with open(path) as f:
        return [c.split(":", 1)[0] for c in f.readline().rstrip("\n").split("\t")]


def count_rows(path: str) -> int:
    """Data rows of an atomic file (lines after the header, blank lines not counted)."""
    with open(path) as f:
        next(f, None)
        return sum(1 for line in f if line.strip())


def base_config(data_dir: str, is_kg: bool, checkpoint_dir: str, sequential: bool = False) -> dict:
    cfg = {
        # data: the given split, nothing filtered, nothing thresholded
        "data_path": data_dir,
        "benchmark_filename": list(BENCHMARK_FILES),
        "field_separator": "\t",
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "RATING_FIELD": "rating",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": list(INTER_COLS)},
        "unload_col": None,
        "unused_col": None,
        "threshold": None,
        "rm_dup_inter": None,
        "val_interval": None,
        "filter_inter_by_user_or_item": False,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "normalize_all": False,
        "normalize_field": None,
        "save_dataset": False,
        "save_dataloaders": False,
        # evaluation: full ranking, given split (RecBole never re-splits benchmark files)
        "eval_args": {"split": None, "group_by": "user", "order": "RO", "mode": "full"},
        "metrics": list(METRICS),
        "topk": list(TOPK),
        "valid_metric": "MRR@10",
        "metric_decimal_place": 8,
        # training
        "embedding_size": 64,
        "train_batch_size": 2048,
        "epochs": 300,
        "stopping_step": 10,
        "seed": 2020,
        "reproducibility": True,
        # environment
        "use_gpu": False,
        "show_progress": False,
        "log_wandb": False,
        "state": "INFO",
        "checkpoint_dir": checkpoint_dir,
    }
    if sequential:
        # pre-augmented rows: the history is a token_seq in the item vocabulary (alias), RecBole
        # takes the rows as they are (no augmentation with benchmark files); SequentialDataset
        # requires time ordering ("TO"), which benchmark files skip anyway
        cfg["load_col"] = {"inter": list(SEQ_INTER_COLS)}
        cfg.update({"alias_of_item_id": ["item_id_list"], "seq_separator": " ",
                    "LIST_SUFFIX": "_list", "ITEM_LIST_LENGTH_FIELD": "item_length",
                    "MAX_ITEM_LIST_LENGTH": 50, "seq_len": None})
        cfg["eval_args"] = {**cfg["eval_args"], "order": "TO"}
    if is_kg:
        cfg["load_col"].update({"kg": ["head_id", "relation_id", "tail_id"],
                                "link": ["item_id", "entity_id"]})
        cfg.update({"kg_reverse_r": False,
                    "entity_kg_num_interval": "[0,inf)",
                    "relation_kg_num_interval": "[0,inf)"})
    return cfg


def jsonable(value):
    """Config values as plain JSON (enums, devices, numpy scalars -> str / numbers)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


def default_eval_users(model_class, n_items: int) -> int:
    from recbole.model.abstract_recommender import AbstractRecommender

    no_full_sort = model_class.full_sort_predict is AbstractRecommender.full_sort_predict
    if model_class.__name__ in PAIRWISE_FULL_SORT or no_full_sort:
        return max(1, PAIR_BUDGET // n_items)
    return EVAL_USERS


def model_param_names(model: str) -> list[str]:
    import yaml
    import recbole

    path = os.path.join(os.path.dirname(recbole.__file__), "properties", "model", f"{model}.yaml")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return list((yaml.safe_load(f) or {}).keys())


def per_user_metrics(trainer, test_data, dataset, config):
    """Per-user test metrics of the (best) model loaded in ``trainer``.

    Scores and masking come from RecBole's own ``_full_sort_batch_eval`` (scores of padding id 0
    and of each user's history, i.e. train+valid items not among the user's test positives, set to
    -inf); top-k and the positive-index matrix follow ``Collector.eval_batch_collect``; the values
    come from the metric classes' ``metric_info``.
    """
    import numpy as np
    import torch
    from recbole.evaluator import metrics as rb_metrics

    maxk = max(config["topk"])
    uid_field = dataset.uid_field
    uids, pos_rows, len_rows = [], [], []
    trainer.model.eval()
    with torch.no_grad():
        for batched in test_data:
            interaction, scores, positive_u, positive_i = trainer._full_sort_batch_eval(batched)
            _, topk_idx = torch.topk(scores, maxk, dim=-1)
            pos_matrix = torch.zeros_like(scores, dtype=torch.int)
            pos_matrix[positive_u, positive_i] = 1
            len_rows.append(pos_matrix.sum(dim=1).cpu().numpy())
            pos_rows.append(torch.gather(pos_matrix, dim=1, index=topk_idx).to(torch.bool).cpu().numpy())
            uids.append(interaction[uid_field].cpu().numpy())
    pos_index = np.concatenate(pos_rows)
    pos_len = np.concatenate(len_rows)
    uid_internal = np.concatenate(uids)
    raw = dataset.id2token(uid_field, uid_internal)
    out = {"user_ids": [str(t) for t in raw]}
    for name in config["metrics"]:
        metric = getattr(rb_metrics, name)(config)
        n_args = len(inspect.signature(metric.metric_info).parameters)
        table = metric.metric_info(pos_index, pos_len) if n_args == 2 else metric.metric_info(pos_index)
        for k in config["topk"]:
            out[f"{name.lower()}@{k}"] = [float(v) for v in table[:, k - 1]]
    return out


def main(argv=None):
    t_start = time.perf_counter()
    args = parse_args(argv)
    data_dir = os.path.abspath(args.data_dir)
    out_path = os.path.abspath(args.out)
    ds_dir = os.path.join(data_dir, args.dataset)
    files = {part: os.path.join(ds_dir, f"{args.dataset}.{part}.inter") for part in BENCHMARK_FILES}
    for f in files.values():
        if not os.path.isfile(f):
            raise SystemExit(f"missing benchmark file {f}")
    seq_files = "item_id_list" in inter_header(files["train"])
    overrides = parse_overrides(args.overrides)

    import numpy as np
    import torch
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import ModelType, get_model, get_trainer, init_logger, init_seed

    model_class = get_model(args.model)
    is_kg = model_class.type == ModelType.KNOWLEDGE
    sequential = model_class.type == ModelType.SEQUENTIAL
    if sequential != seq_files:
        kind = "sequential" if sequential else "not a sequential"
        raise SystemExit(f"{args.model} is {kind} model but {files['train']} "
                         f"{'lacks' if sequential else 'has'} an item_id_list column; export the "
                         f"split {'with' if sequential else 'without'} --sequential")
    if is_kg:
        for suffix in ("kg", "link"):
            f = os.path.join(ds_dir, f"{args.dataset}.{suffix}")
            if not os.path.isfile(f):
                raise SystemExit(f"{args.model} is a knowledge-graph model and needs {f}")

    own_work_dir = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="recbole-run-") if own_work_dir else os.path.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(work_dir)  # RecBole writes log/ and log_tensorboard/ relative to the cwd
    try:
        cfg = base_config(data_dir, is_kg, os.path.join(work_dir, "saved"), sequential)
        cfg.update(overrides)
        # RecBole's Config also reads ``--key=value`` from sys.argv (and lets it override
        # config_dict); hide our own arguments from it.
        saved_argv = sys.argv
        sys.argv = sys.argv[:1]
        try:
            config = Config(model=args.model, dataset=args.dataset, config_dict=cfg)
        finally:
            sys.argv = saved_argv
        # Config points dataset "ml-100k" at RecBole's bundled copy; always read our export.
        config["data_path"] = ds_dir

        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        t_data = time.perf_counter()
        dataset = create_dataset(config)
        if sequential:
            hist_len = dataset.field2seqlen["item_id_list"]
            if hist_len > config["MAX_ITEM_LIST_LENGTH"]:
                raise SystemExit(f"histories of up to {hist_len} items in the files, longer than "
                                 f"MAX_ITEM_LIST_LENGTH={config['MAX_ITEM_LIST_LENGTH']}; export "
                                 "with --max-len no larger than it")
        if "eval_batch_size" not in overrides:
            # RecBole's full-sort loader takes eval_batch_size // item_num users per batch, or, for
            # sequential models, eval_batch_size rows
            config["eval_batch_size"] = EVAL_ROWS if sequential else (
                default_eval_users(model_class, dataset.item_num) * dataset.item_num)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        data_s = time.perf_counter() - t_data

        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

        history = []
        state = {"best_epoch": None, "current": None}
        orig_train, orig_valid, orig_save = trainer._train_epoch, trainer._valid_epoch, trainer._save_checkpoint

        def timed_train(train_data_, epoch_idx, *a, **k):
            t0 = time.perf_counter()
            loss = orig_train(train_data_, epoch_idx, *a, **k)
            rec = {"epoch": int(epoch_idx), "train_s": time.perf_counter() - t0,
                   "train_loss": jsonable(sum(loss) if isinstance(loss, tuple) else loss)}
            history.append(rec)
            state["current"] = rec
            return loss

        def timed_valid(*a, **k):
            t0 = time.perf_counter()
            score, result = orig_valid(*a, **k)
            if state["current"] is not None:
                state["current"]["eval_s"] = time.perf_counter() - t0
                state["current"]["valid_score"] = float(score)
            return score, result

        def tracked_save(epoch, *a, **k):
            state["best_epoch"] = int(epoch)
            return orig_save(epoch, *a, **k)

        trainer._train_epoch, trainer._valid_epoch, trainer._save_checkpoint = (
            timed_train, timed_valid, tracked_save)

        t_fit = time.perf_counter()
        _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
        fit_s = time.perf_counter() - t_fit
        t_test = time.perf_counter()
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
        test_eval_s = time.perf_counter() - t_test

        per_user = per_user_metrics(trainer, test_data, dataset, config)
        test = {k: float(v) for k, v in test_result.items()}
        for key, reported in test.items():
            mean = float(np.mean(per_user[key]))
            assert abs(mean - reported) <= TOL, f"per-user mean of {key} {mean} != RecBole's {reported}"
        # what RecBole actually loaded (nothing may be dropped relative to the export)
        sizes = dict(zip(BENCHMARK_FILES, (len(d) for d in (train_data._dataset, valid_data._dataset,
                                                             test_data._dataset))))
        file_rows = {part: count_rows(f) for part, f in files.items()}
        assert sizes == file_rows, f"RecBole loaded {sizes} rows, the files hold {file_rows}"
        if sequential:  # every test row is one target (one "user" entry per row)
            assert len(per_user["user_ids"]) == sizes["test"], (len(per_user["user_ids"]), sizes)
        else:
            assert len(per_user["user_ids"]) == len(set(per_user["user_ids"]))
        data_stats = {"n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1,
                      "n_train": sizes["train"], "n_valid": sizes["valid"], "n_test": sizes["test"],
                      "n_test_users": len(set(per_user["user_ids"]))}
        if sequential:
            data_stats.update({"sequential_rows": True, "n_test_rows": len(per_user["user_ids"]),
                               "max_history": int(dataset.field2seqlen["item_id_list"])})
        if is_kg:
            data_stats.update({"n_entities": dataset.entity_num - 1, "n_relations": dataset.relation_num - 1,
                               "n_triples": len(dataset.kg_feat)})

        effective = {k: jsonable(config[k]) for k in cfg if k != "checkpoint_dir"}
        effective.update({k: jsonable(config[k]) for k in
                          ("eval_batch_size", "learning_rate", "learner", "weight_decay",
                           "train_neg_sample_args", "eval_step", "device", "data_path")})
        if sequential:
            effective["eval_rows_per_batch"] = config["eval_batch_size"]
        else:
            effective["eval_users_per_batch"] = max(1, config["eval_batch_size"] // dataset.item_num)
        model_params = {k: jsonable(config[k]) for k in model_param_names(args.model)}

        train_times = [h["train_s"] for h in history]
        eval_times = [h["eval_s"] for h in history if "eval_s" in h]
        result = {
            "library": "recbole",
            "recbole_version": recbole.__version__,
            "torch_version": torch.__version__,
            "model": args.model,
            "dataset": args.dataset,
            "config": effective,
            "model_params": model_params,
            "data_stats": data_stats,
            "best_epoch": state["best_epoch"],
            "epochs_run": len(history),
            "valid": {k: float(v) for k, v in (best_valid or {}).items()},
            "test": test,
            "per_user": per_user,
            "history": history,
            "timing": {
                "train_epoch_s": statistics.median(train_times) if train_times else None,
                "eval_s": statistics.median(eval_times) if eval_times else None,
                "test_eval_s": test_eval_s,
                "data_s": data_s,
                "fit_s": fit_s,
                "total_s": time.perf_counter() - t_start,
                "torch_threads": torch.get_num_threads(),
            },
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        }
    finally:
        os.chdir(cwd)
        if own_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)

    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out_path)
    print(f"wrote {out_path}: test " + " ".join(f"{k}={v:.4f}" for k, v in test.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
