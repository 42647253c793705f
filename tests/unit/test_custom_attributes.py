"""CustomAttributes a /v1/invocations caller may send: only the model's own container
routes, and none of the keys containers read as model, handler or header choices."""

from __future__ import annotations

import pytest

from emd_proxy.engines.custom_attributes import allowed_routes, check_custom_attributes
from emd_proxy.engines.vllm import VllmEmbeddings
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import RegistryEntry


def entry(engine: str = "vllm", families: tuple[str, ...] = ("chat", "invocations")):
    return RegistryEntry(
        id="m/dev", model="m", tag="dev", endpoint="emd-m-dev", engine=engine,
        families=list(families),
    )  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "accept_eula=true",
        "route=/invocations",
        "trace=abc;accept_eula=true",
        "session=1, locale=en",
    ],
)
def test_harmless_attributes_pass(value: str | None) -> None:
    check_custom_attributes(value, entry())


@pytest.mark.parametrize(
    "value",
    [
        "route=/v1/embeddings",  # not a family this model is deployed for
        "route=/ping",
        "route=/v1/load_lora_adapter",
        "ROUTE=/v1/rerank",
        "a=1,route=/tokenize",
        "xroute=/v1/models",  # the DLC's regex is a search: this routes too
        "route=/invocations,route=/v1/models",  # every occurrence is checked
        "route=/invocations?x",
        "route=v1/models",
        "route=",
    ],
)
def test_foreign_routes_are_refused(value: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_custom_attributes(value, entry())
    assert refused.value.param == "custom_attributes"
    assert "route" in refused.value.message


def test_routes_of_the_model_s_own_families_pass() -> None:
    pooled = entry(families=("embeddings", "rerank", "invocations"))
    check_custom_attributes("route=/v1/embeddings", pooled)
    check_custom_attributes("route=/v1/rerank", pooled)
    assert allowed_routes(pooled) == {"/invocations", "/v1/embeddings", "/v1/rerank"}
    # The route the adapter itself sends is one the check allows.
    sent = VllmEmbeddings().build(["x"], None, {}).custom_attributes
    check_custom_attributes(sent, pooled)


def test_other_engines_have_only_their_invocations_route() -> None:
    tgi = entry("tgi", ("chat", "invocations"))
    assert allowed_routes(tgi) == {"/invocations"}
    with pytest.raises(InvalidRequestError):
        check_custom_attributes("route=/v1/chat/completions", tgi)


@pytest.mark.parametrize(
    "value",
    [
        "model_name=other",
        "Model_Version=2",
        "model_url=s3://bucket/m;engine_name=Python",
        "handler=evil",
        "x-starting-token=abc",
        "x-synchronous=false",
        "X-Amzn-SageMaker-Adapter-Identifier=other-adapter",
        "x-amzn-sagemaker-forwarded-api=InvokeEndpoint",
        "accept_eula=true; Content-Type=text/plain",
        "requestId=forged",
    ],
)
def test_djl_control_keys_are_refused_for_every_engine(value: str) -> None:
    for engine in ("lmi", "vllm", "tgi"):
        with pytest.raises(InvalidRequestError) as refused:
            check_custom_attributes(value, entry(engine))
        assert refused.value.param == "custom_attributes"
