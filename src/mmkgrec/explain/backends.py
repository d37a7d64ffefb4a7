"""Language-model backends that draft explanations from the eq. 17 prompt.

``transformers``
    A local causal language model through the project's shared loader
    (:func:`mmkgrec.features.load_language_model`): ``explain_lm_path`` is
    ``gemma-3-270m`` / ``gemma3-270m`` (the bundled Gemma-3-270M), a ``.gguf`` file or a model
    folder. The prompt goes through the tokenizer's chat template when it has one.
``http``
    Any OpenAI-compatible endpoint (llama.cpp's server, vLLM, Ollama): ``POST
    {explain_http_url}/chat/completions``, ``explain_http_timeout`` seconds per request,
    ``explain_http_retries`` retries (with a doubling pause) after a timeout, a refused
    connection or a 5xx answer. An answer that is not the expected JSON is an error naming the
    endpoint; both end in the template, with a note saying why.

Every backend has ``fits(prompt) -> bool`` (the prompt plus ``explain_max_new_tokens`` within its
window) and ``generate(prompt, config) -> str``.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MMKGRecError

log = logging.getLogger(__name__)


class BackendError(MMKGRecError):
    """A backend failed to draft (timeout, unreachable, garbage); the message names it."""


class HTTPBackend:
    """An OpenAI-compatible chat-completions endpoint."""

    name = "http"

    def __init__(self, config):
        url = config["explain_http_url"]
        if not url:
            raise BackendError("the http backend needs explain_http_url (e.g. "
                               "--set explain_http_url=http://127.0.0.1:8080/v1)")
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise BackendError(f"explain_http_url '{url}' is not an http(s) URL")
        self.endpoint = self.url + "/chat/completions"
        self.window = config["explain_prompt_max_tokens"]
        self.max_new = config["explain_max_new_tokens"]

    def fits(self, prompt: str) -> bool:
        # no tokenizer here: about four characters a token, the usual rule for English
        return self.window is None or len(prompt) / 4 + self.max_new <= self.window

    def generate(self, prompt: str, config) -> str:
        body = json.dumps({"model": config["explain_http_model"],
                           "messages": [{"role": "user", "content": prompt}],
                           "max_tokens": config["explain_max_new_tokens"],
                           "temperature": config["explain_temperature"],
                           "stream": False}).encode("utf-8")
        retries, timeout = config["explain_http_retries"], config["explain_http_timeout"]
        last = None
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
            req = urllib.request.Request(self.endpoint, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code >= 500:
                    continue
                raise BackendError(f"{self.endpoint}: answered HTTP {e.code}") from None
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = ("timed out after " + f"{timeout:g} s" if isinstance(reason, TimeoutError)
                        or "timed out" in str(reason) else f"unreachable ({reason})")
                continue
            return _content(raw, self.endpoint)
        raise BackendError(f"{self.endpoint}: {last} ({retries + 1} attempts)")


def _content(raw: bytes, endpoint: str) -> str:
    """The text of an OpenAI-style answer; BackendError naming the endpoint for anything else."""
    try:
        data = json.loads(raw.decode("utf-8"))
        choice = data["choices"][0]
        text = (choice.get("message") or {}).get("content")
        if text is None:
            text = choice.get("text")
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise BackendError(f"{endpoint}: the answer is not an OpenAI-style completion "
                           f"({raw[:80]!r})") from None
    if not isinstance(text, str):
        raise BackendError(f"{endpoint}: the answer holds no text")
    return text


BUNDLED = ("gemma-3-270m", "gemma3-270m")


class TransformersBackend:
    """A local causal LM through the shared loader, :func:`mmkgrec.features.load_language_model`."""

    name = "transformers"

    def __init__(self, config):
        from ..features import load_language_model
        spec = str(config["explain_lm_path"])
        if spec in BUNDLED:
            spec = "gemma3-270m"
        elif spec.endswith(".gguf"):
            spec = f"gemma3-270m:{spec}" if "gemma" in Path(spec).name.lower() else f"hf:{spec}"
        elif not spec.startswith(("hf:", "gemma3-270m")):
            spec = f"hf:{spec}"
        self.spec = spec
        self.lm = load_language_model(spec, device=config["device"])
        if not getattr(self.lm, "is_decoder", False):
            raise BackendError(f"explain_lm_path '{config['explain_lm_path']}' is not a decoder "
                               "(causal) language model; it cannot draft text")
        self.max_new = config["explain_max_new_tokens"]
        self.limit = config["explain_prompt_max_tokens"]

    def _chat(self, prompt: str) -> str:
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        # no chat template (the bundled GGUF brings none): the prompt as it is, which ends in
        # "Explanation:" for the model to continue (Gemma's turn format made it echo the prompt)
        return prompt

    def fits(self, prompt: str) -> bool:
        n = len(self.lm.tokenizer(self._chat(prompt), add_special_tokens=False)["input_ids"])
        window = self.lm.window - self.max_new
        if self.limit is not None:
            window = min(window, self.limit)
        return n <= window

    def generate(self, prompt: str, config) -> str:
        kw = {}
        if config["explain_temperature"] > 0:
            kw = {"do_sample": True, "temperature": config["explain_temperature"]}
        text = self._chat(prompt)
        try:
            return self.lm.generate([text], max_new_tokens=config["explain_max_new_tokens"],
                                    **kw)[0]
        except (RuntimeError, ValueError, IndexError) as e:  # torch / transformers failures
            raise BackendError(f"{self.spec}: generation failed ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from None


def make_backend(name: str, config):
    if name == "http":
        return HTTPBackend(config)
    if name == "transformers":
        return TransformersBackend(config)
    raise BackendError(f"unknown explanation backend '{name}'")
