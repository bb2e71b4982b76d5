"""`RewardAPI`: the LitServe API of the reward-model server — load once, check and tokenise each request, score batches.

It runs in LitServe's inference worker. `setup` loads the RM with `rlhf.reward.score.load_scorer` (checkpoint, adapter
export or merged HF export) and its own template and max_length. `decode_request` parses a `/score` or `/get_reward`
body (`rlhf.serve.bodies`) and tokenises every item in the RM's template; over-length `/score` items are cut by
evaluation's "truncate" rule up to the RM's max_length and flagged, and anything longer than `max_item_tokens` is
rejected (text longer than the limit × the longest token in characters is rejected before tokenising). Bad input
never raises, whatever the exception: LitServe fails a whole dynamic batch on one, so a rejection travels
through `predict` as a value and `encode_response` turns it into that request's own 4xx JSON response.
`predict` scores every sequence of every request in the batch with `score_sequences` and logs one line per batch.
"""

from __future__ import annotations

import hmac
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import litserve as ls
from fastapi import Header, HTTPException
from fastapi.responses import JSONResponse

from rlhf.serve.bodies import OpenRLHFBody, RequestError, parse_get_reward, parse_score


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on what one request may ask for.

    Args:
        max_body_bytes: largest request body; larger bodies get 413 before they are parsed.
        max_items: most items (or OpenRLHF queries) in one request; more gets 413.
        max_item_tokens: most tokens of one `/score` item in the RM's template; more gets 422. Items between the RM's
            max_length and this are cut by evaluation's "truncate" rule, as offline scoring does, and flagged
            `truncated`. None means 4 × the RM's max_length; set it to the max_length to reject instead of cut.
    """

    max_body_bytes: int = 1_000_000
    max_items: int = 64
    max_item_tokens: int | None = None


@dataclass(frozen=True)
class Encoded:
    """A request after checking: token ids per item, which items were truncated, and how to answer."""

    sequences: list[list[int]]
    truncated: list[bool]
    kind: Literal["single", "list", "openrlhf"]  # one /score object, a /score list, or a /get_reward body


class RewardAPI(ls.LitAPI):
    """Serves one reward model at `/score` (and, through `rlhf.serve`, `/get_reward`).

    Args:
        model_path: an RM checkpoint directory of this repo, an adapter export or a merged HF export.
        limits: request bounds.
        forward_batch_size: sequences per forward pass (a dynamic batch of requests is split into these).
        api_key_env: name of the environment variable holding the API key clients must send as `X-API-Key`;
            None (or the variable unset) serves without a key.
        max_batch_size: most requests LitServe merges into one dynamic batch (1 disables batching).
        batch_timeout: seconds LitServe waits to fill a batch.
    """

    def __init__(self, model_path: str, limits: ServeLimits = ServeLimits(), forward_batch_size: int = 32, api_key_env: str | None = None, max_batch_size: int = 16, batch_timeout: float = 0.01):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/score")
        self.model_path, self.limits, self.forward_batch_size, self.api_key_env = model_path, limits, forward_batch_size, api_key_env
        self.batches = 0

    def setup(self, device: str) -> None:
        from rlhf.data.encode import Encoder
        from rlhf.eval.score_pairs import pad_id_of
        from rlhf.models.reward_model import has_sigma
        from rlhf.reward.score import load_scorer

        model, tokenizer, settings, attributes = load_scorer(self.model_path)
        self.model = model.requires_grad_(False).eval().to(device)
        self.encoder = Encoder(tokenizer, settings.template, settings.max_length)
        self.pad_id, self.attributes = pad_id_of(tokenizer), attributes
        self.mean_var = has_sigma(model)
        self.item_limit = self.limits.max_item_tokens or 4 * settings.max_length
        special = set(tokenizer.all_special_tokens)  # never produced from text
        self.max_token_chars = max(len(piece) for piece in tokenizer.get_vocab() if piece not in special)
        _log(f"loaded {self.model_path} on {device}: template {settings.template.name}, max_length {settings.max_length}, "
             f"item limit {self.item_limit} tokens, {'mean-variance' if self.mean_var else len(attributes)} outputs")

    def authorize(self, x_api_key: str | None = Header(default=None)) -> None:
        """FastAPI dependency LitServe puts on `/score` (and `rlhf.serve` on `/get_reward`): check `X-API-Key`."""
        expected = os.environ.get(self.api_key_env) if self.api_key_env else None
        if expected and not hmac.compare_digest((x_api_key or "").encode(), expected.encode()):
            raise HTTPException(status_code=401, detail="X-API-Key: missing or wrong API key")

    def decode_request(self, request):  # unannotated: LitServe reads the annotation as the FastAPI body type
        """A `/score` body or an `OpenRLHFBody` → `Encoded`, or the `RequestError` to answer with."""
        try:
            if isinstance(request, OpenRLHFBody):
                texts = parse_get_reward(request.body, self.limits.max_items)
                return Encoded([self._raw_ids(t, f"query[{i}]") for i, t in enumerate(texts)], [False] * len(texts), "openrlhf")
            parsed = parse_score(request, self.limits.max_items)
            encoded = [self._item_ids(it.prompt, it.response, "body" if parsed.single else f"body[{i}]") for i, it in enumerate(parsed.items)]
            return Encoded([ids for ids, _ in encoded], [cut for _, cut in encoded], "single" if parsed.single else "list")
        except RequestError as e:
            return e
        except Exception as e:  # noqa: BLE001  (anything else must fail this request only, never its whole batch)
            _log(f"request rejected: {type(e).__name__}: {e}")
            return RequestError(422, "body", f"could not be processed ({type(e).__name__}: {e})")

    def _item_ids(self, prompt: str, response: str, where: str) -> tuple[list[int], bool]:
        """Token ids in the RM's template, and whether the "truncate" rule cut them."""
        from rlhf.data.encode import EncodeStats

        self._check_chars(len(prompt) + len(response), self.item_limit, where)
        try:
            ids = self.encoder.ids(prompt, response)
        except ValueError as e:  # a template that cannot render this item (e.g. a chat template's checks)
            raise RequestError(422, where, str(e)) from e
        if len(ids) > self.item_limit:
            raise RequestError(422, where, f"{len(ids)} tokens in the reward model's template; this server takes at most {self.item_limit}")
        if len(ids) <= self.encoder.max_length:
            return ids, False
        return self.encoder.encode(prompt, [response], "truncate", EncodeStats())[0], True  # type: ignore[index]  # never drops

    def _raw_ids(self, text: str, where: str) -> list[int]:
        """An OpenRLHF query is already rendered text: tokenise as the RM's template would, never cut it."""
        limit = min(self.item_limit, self.encoder.max_length)
        self._check_chars(len(text), limit, where)
        ids = list(self.encoder.tokenizer(text, add_special_tokens=self.encoder.add_special_tokens, verbose=False)["input_ids"])
        if len(ids) > limit:
            raise RequestError(422, where, f"{len(ids)} tokens; this server takes at most {limit} (rendered queries cannot be truncated)")
        return ids

    def _check_chars(self, chars: int, token_limit: int, where: str) -> None:
        """Reject, before tokenising, text that must be over `token_limit` tokens: no token is longer than
        `max_token_chars` characters, so more than limit × that many characters cannot fit (cheap, and exact)."""
        if chars > token_limit * self.max_token_chars:
            raise RequestError(422, where, f"{chars} characters: more than {token_limit} tokens for certain "
                               f"(no token of this tokenizer is longer than {self.max_token_chars} character{'s' * (self.max_token_chars != 1)})")

    def predict(self, x: Any) -> Any:
        requests = x if self.max_batch_size > 1 else [x]
        results = self._score_requests(requests)
        return results if self.max_batch_size > 1 else results[0]

    def _score_requests(self, requests: list[Encoded | RequestError]) -> list[dict[str, Any] | RequestError]:
        from rlhf.eval.score_pairs import score_sequences

        start = time.perf_counter()
        valid = [r for r in requests if isinstance(r, Encoded)]
        sequences = [s for r in valid for s in r.sequences]
        outputs = score_sequences(self.model, sequences, self.pad_id, self.forward_batch_size, all_outputs=True) if sequences else None
        results: list[dict[str, Any] | RequestError] = []
        offset = 0
        for r in requests:
            if isinstance(r, RequestError):
                results.append(r)
                continue
            results.append(self._answer(r, outputs[offset : offset + len(r.sequences)]))  # type: ignore[index]
            offset += len(r.sequences)
        self.batches += 1
        _log(f"batch {self.batches}: {len(requests)} requests ({len(requests) - len(valid)} rejected), {len(sequences)} items, "
             f"{sum(map(len, sequences))} tokens, {1000 * (time.perf_counter() - start):.1f} ms")
        return results

    def _answer(self, request: Encoded, outputs: Any) -> dict[str, Any]:
        rewards = self.model.reward(outputs).tolist()
        if request.kind == "openrlhf":
            return {"rewards": rewards}
        if self.mean_var:
            sigmas = self.model.sigma(outputs).tolist()
            items = [{"reward": r, "mu": r, "sigma": s, "outputs": {"mu": r, "sigma": s}} for r, s in zip(rewards, sigmas)]
        else:
            items = [{"reward": r, "outputs": dict(zip(self.attributes, row))} for r, row in zip(rewards, outputs.tolist())]
        for item, cut in zip(items, request.truncated):
            item["truncated"] = cut
        return items[0] if request.kind == "single" else {"results": items}

    def encode_response(self, output):  # unannotated: LitServe reads the annotation as the response type
        if isinstance(output, RequestError):
            return JSONResponse(status_code=output.status, content=output.body())
        return output


def _log(line: str) -> None:
    print(f"[rlhf.serve] {line}", file=sys.stderr, flush=True)
