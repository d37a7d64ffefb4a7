"""Language-model backends of the explanations: the OpenAI-compatible HTTP backend against a
local stand-in server (good drafts, corrected drafts, timeouts, retries, garbage, empty answers,
over-long prompts), and the correction loop ending in the template."""

import pytest

import mmkgrec
from explain_data import write
from explain_server import StandIn
from mmkgrec.errors import MMKGRecError

SETTINGS = {"show_progress": False, "threads": 1, "split": "leave_one_out", "user_min_inter": 1,
            "item_min_inter": 1}
GOOD = ("Collateral shares its director with Heat, which you rated 5. "
        "It is a Crime film from 2004.")
FALSE = "Collateral was directed by Steven Spielberg, like Ronin, which you rated 5."
NO_SIM = {"explain_similarity_threshold": -1.0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-http")
    mmkgrec.train("Pop", str(write(root / "films")), root / "run", overrides=SETTINGS)
    return mmkgrec.load(root / "run")


def _explain(run, server, **opts):
    return run.explain("1", "8", "http", explain_http_url=server.url,
                       **{**NO_SIM, "explain_http_timeout": 5.0, **opts})


def test_a_good_draft_is_shown_as_drafted(run):
    with StandIn([GOOD]) as s:
        e = _explain(run, s)
    assert e.backend == "http" and e.requested_backend == "http" and not e.corrected
    assert [x.text for x in e.sentences] == [
        "Collateral shares its director with Heat, which you rated 5.",
        "It is a Crime film from 2004."]
    assert all(x.triples for x in e.sentences)
    prompt = s.prompts[0]
    for part in ("Task:", "User history", "- Heat (1995, rated 5)", "Candidate: Collateral (2004)",
                 "Candidate keywords: collateral, crime, drama, thriller", "User interests:",
                 "Evidence:", "- Collateral was directed by the same person as Heat"):
        assert part in prompt


def test_a_false_draft_is_redrafted_with_its_failures_named(run):
    with StandIn([FALSE, GOOD]) as s:
        e = _explain(run, s)
    assert e.backend == "http" and e.corrected and len(e.attempts) == 2
    assert e.attempts[0].failures and e.attempts[0].claims_ok < e.attempts[0].claims
    assert "previous draft was rejected" in s.prompts[1]
    assert "Spielberg" in s.prompts[1] and "Ronin" in s.prompts[1]
    assert "Spielberg" not in e.text


def test_drafts_that_keep_failing_end_in_the_template(run):
    with StandIn([FALSE]) as s:
        e = _explain(run, s, explain_max_attempts=3)
    assert len(s.prompts) == 3
    assert e.backend == "template" and e.requested_backend == "http" and e.corrected
    assert "Spielberg" not in e.text and e.verified
    assert any("no http draft passed the verifier in 3 attempts" in n for n in e.notes)


@pytest.mark.parametrize("reply,why", [
    (("raw", b"<html>busy</html>"), "not an OpenAI-style completion"),
    (("raw", b'{"choices": []}'), "not an OpenAI-style completion"),
    (("status", 404), "HTTP 404"),
])
def test_garbage_ends_in_the_template_saying_why(run, reply, why):
    with StandIn([reply]) as s:
        e = _explain(run, s)
    assert e.backend == "template" and e.sentences and e.verified
    assert any(why in n and s.url in n for n in e.notes)


def test_an_empty_answer_is_redrafted_then_the_template_answers(run):
    with StandIn([""]) as s:
        e = _explain(run, s)
    assert e.backend == "template" and e.attempts[0].failures == ["the draft is empty"]


def test_timeouts_are_retried_then_the_template_answers(run):
    with StandIn([("sleep", 1.5, GOOD)]) as s:
        e = _explain(run, s, explain_http_timeout=0.2, explain_http_retries=1)
    assert len(s.prompts) == 2  # the first try and one retry
    assert e.backend == "template"
    assert any("timed out after 0.2 s (2 attempts)" in n for n in e.notes)


def test_a_5xx_answer_is_retried(run):
    with StandIn([("status", 503), GOOD]) as s:
        e = _explain(run, s, explain_http_retries=2)
    assert len(s.prompts) == 2 and e.backend == "http"


def test_an_unreachable_server_ends_in_the_template(run):
    with StandIn([GOOD]) as s:
        url = s.url
    e = run.explain("1", "8", "http", explain_http_url=url, explain_http_retries=1,
                    explain_http_timeout=1.0, **NO_SIM)
    assert e.backend == "template" and any("unreachable" in n for n in e.notes)


def test_a_prompt_longer_than_the_window_ends_in_the_template(run):
    with StandIn([GOOD]) as s:
        e = _explain(run, s, explain_prompt_max_tokens=100)
    assert not s.prompts and e.backend == "template"
    assert any("does not fit the language model's window" in n for n in e.notes)


def test_the_interest_check_can_reject_a_draft(run):
    with StandIn([GOOD]) as s:
        e = _explain(run, s, explain_similarity_threshold=0.99, explain_max_attempts=1)
    a = e.attempts[0]
    assert a.similarity is not None and -1 <= a.similarity < 0.99
    assert any("similarity to the user's interests" in f for f in a.failures)
    assert e.backend == "template"


def test_the_http_backend_needs_a_url(run):
    with pytest.raises(MMKGRecError, match="explain_http_url"):
        run.explain("1", "8", "http")


def test_list_markers_repeats_and_a_cut_off_sentence(run):
    draft = ("- Collateral is a Crime film.\n- Collateral is a Crime film.\n-\n"
             "- Collateral shares its director with Heat, which you rated")
    with StandIn([draft]) as s:
        e = _explain(run, s)
    assert e.backend == "http"
    assert [x.text for x in e.sentences] == ["Collateral is a Crime film."]


def _tiny_decoder(folder, positions: int):
    """A randomly initialised two-layer Llama with a byte-level tokenizer, written as a
    transformers folder: a local causal LM that drafts garbage, made without any download."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # one token per byte
    vocab = {ch: k for k, ch in enumerate(sorted(alphabet))}
    vocab["<|endoftext|>"] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>")
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=positions, eos_token_id=len(vocab) - 1,
                      bos_token_id=len(vocab) - 1)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def test_the_transformers_backend_with_a_local_model(run, tmp_path):
    lm = _tiny_decoder(tmp_path / "tiny-lm", positions=4096)
    e = run.explain("1", "8", "transformers", explain_lm_path=str(lm), explain_max_new_tokens=24,
                    **NO_SIM)
    assert len(e.attempts) == 3  # two drafts from the model, then the template
    assert [a.backend for a in e.attempts] == ["transformers", "transformers", "template"]
    assert e.backend == "template" and e.corrected and e.verified
    assert any("no transformers draft passed the verifier" in n for n in e.notes)
    assert "Collateral was directed by the same person as Heat" in e.text


def test_a_prompt_longer_than_a_local_models_window(run, tmp_path):
    lm = _tiny_decoder(tmp_path / "short-lm", positions=128)
    e = run.explain("1", "8", "transformers", explain_lm_path=str(lm), **NO_SIM)
    assert e.backend == "template" and e.attempts[0].error
    assert any("does not fit the language model's window" in n for n in e.notes)
