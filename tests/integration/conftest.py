"""One real local gateway for the integration suite: uvicorn, the SageMaker-runtime
emulator and real containers (echo and SmolLM2), driven with the real openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway, start_local_gateway
from emd_proxy.registry import Features, RegistryEntry
from emd_proxy.settings import Settings

KEY = "sk-test-default"
SCOPED_KEY = "sk-test-echo-only"
KEYS = {"default": KEY, "echo-only": {"key": SCOPED_KEY, "models": ["echo/local"]}}
ECHO = "echo/local"
SMOL = "SmolLM2-135M-Instruct/local"
E5 = "multilingual-e5-small/local"
# One model per chat engine contract: vLLM (echo), TGI and LMI (wire-faithful fakes).
TGI = "echo-tgi/local"
TGI_LEGACY = "echo-tgi-legacy/local"
LMI = "echo-lmi/local"
CHAT_ENGINES = [ECHO, TGI, TGI_LEGACY, LMI]
# A chat-completions function tool the echo engines call with the message as `city`.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WHISPER = "whisper-tiny.en/local"
GHOST = "ghost/local"  # registered, but no endpoint exists behind it
RAW = "echo-raw/local"  # the echo endpoint, reachable through /v1/invocations
# A Whisper model deployed to translate (on WhisperX: WHISPERX_TASK=translate, fixed at
# launch), served here by the tiny.en container: its English speech sample translates
# to the same English words, so this exercises the gateway's translation path.
TRANSLATOR = "whisper-translate/local"
# The e5 endpoint registered as a Matryoshka model (e5 is not one): the TEI contract's
# native `dimensions` path, which only flagged models may use.
E5_MATRYOSHKA = "e5-matryoshka/local"
# SageMaker's InvokeEndpoint limit is 60 s; the slow-container test scales it down
# with `short_invoke_limit`.
INVOKE_TIMEOUT = 30.0
# Scale to zero (`s2z_gateway`): echo's inference component, its idle time before it
# unloads by itself and its simulated load time (a wake's duration).
ECHO_COMPONENT = "emd-echo-local"
S2Z_IDLE_SECONDS = 3.0
S2Z_LOAD_SECONDS = 0.2


@pytest.fixture(scope="session")
def gateway() -> Iterator[LocalGateway]:
    ghost = RegistryEntry(
        id=GHOST,
        model="ghost",
        tag="local",
        endpoint="emd-ghost-local",
        engine="vllm",
        families=["chat"],
    )
    raw = RegistryEntry(
        id=RAW,
        model="echo-raw",
        tag="local",
        endpoint="emd-echo-local",
        engine="vllm",
        families=["invocations"],
    )
    matryoshka = RegistryEntry(
        id=E5_MATRYOSHKA,
        model="e5-matryoshka",
        tag="local",
        endpoint="emd-multilingual-e5-small-local",
        engine="tei",
        families=["embeddings"],
        # e5-small's vectors have 384 values: more is a 400 before any call.
        features=Features(matryoshka=True, dimensions=384),  # type: ignore[call-arg]
    )
    translator = RegistryEntry(
        id=TRANSLATOR,
        model="whisper-translate",
        tag="local",
        endpoint="emd-whisper-tiny-en-local",
        engine="whisperx",
        families=["audio"],
        features=Features(translate=True),  # type: ignore[call-arg]
    )
    gw = start_local_gateway(
        [ECHO, SMOL, E5, WHISPER, TGI, TGI_LEGACY, LMI],
        keys=KEYS,
        # No upstream retries here, so one injected fault is one client-visible error.
        settings=Settings(upstream_max_attempts=1, max_body_bytes=1024 * 1024),
        invoke_timeout=INVOKE_TIMEOUT,
        extra_entries=[ghost, raw, matryoshka, translator],
    )
    yield gw
    gw.stop()


def start_s2z_gateway(
    settings: Settings | None = None,
    *,
    idle_seconds: float = S2Z_IDLE_SECONDS,
    load_seconds: float = S2Z_LOAD_SECONDS,
    models: tuple[str, ...] = (ECHO,),
) -> LocalGateway:
    """A gateway over a scale-to-zero stack of echo/local alone (see `s2z_gateway`), or
    of `models`; for a module that needs other proxy settings in a fixture of its own."""
    return start_local_gateway(
        list(models),
        keys=KEYS,
        settings=settings or Settings(upstream_max_attempts=1),
        scale_to_zero_after=idle_seconds,
        simulated_load_seconds=load_seconds,
    )


@pytest.fixture(scope="module")
def s2z_gateway() -> Iterator[LocalGateway]:
    """echo/local as an inference component (`ECHO_COMPONENT`) with scale to zero:
    unloaded after `S2Z_IDLE_SECONDS` with no call, woken in `S2Z_LOAD_SECONDS`.

    The proxy's boto3 clients point at the stack's emulator
    (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) and at its control plane
    (AWS_ENDPOINT_URL_SAGEMAKER = `s2z_gateway.stack.control_url`), set in os.environ
    before the app is created: create the proxy's `sagemaker` client in create_app,
    not on first use (a later fixture may point the variables elsewhere). The registry
    entry of echo/local has `inference_component` = ECHO_COMPONENT and `wake_seconds`.

        s2z_gateway.base_url                     # .../v1, key KEY
        s2z_gateway.stack.scale_to_zero(ECHO_COMPONENT)   # to zero now, no waiting
        components = s2z_gateway.stack.components
        components.snapshot()                    # rows of GET /_emulator/components
        components.get(ECHO_COMPONENT).status    # InService | Updating | Failed
        components.simulated_load_seconds = 2.0 # a slower wake (e.g. for a 503 test)
        components.idle_after = 60.0             # keep it up during a long test
        # Over HTTP, as the proxy and `emd status` see it:
        #   POST {control_url}/ (SageMaker JSON protocol) DescribeInferenceComponent,
        #     UpdateInferenceComponentRuntimeConfig, DescribeEndpoint
        #   GET  {control_url}/_emulator/components
        #   POST {control_url}/_emulator/components/emd-echo-local/unload
        #   GET  {emulator_url}/_emulator/stats  -> "no_capacity_failures"

    At zero copies both invoke operations answer 400 ValidationError "Inference
    Component has no capacity ..." until an UpdateInferenceComponentRuntimeConfig to 1
    copy has loaded it (status Updating meanwhile, then InService 1/1). Tests that
    change `simulated_load_seconds` or `idle_after` set them back (or use
    `start_s2z_gateway` for a module fixture of their own)."""
    gw = start_s2z_gateway()
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "gateway" in request.fixturenames:
        gw: LocalGateway = request.getfixturevalue("gateway")
        assert gw.stack.emulator is not None
        gw.stack.emulator.faults.clear()


@pytest.fixture
def client(gateway: LocalGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)


@pytest.fixture
def async_client(gateway: LocalGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)


@pytest.fixture
def http(gateway: LocalGateway) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as c:
        yield c


def endpoint_of(gateway: LocalGateway, model_id: str) -> str:
    return gateway.registry.resolve(model_id).endpoint


@pytest.fixture
def short_invoke_limit(gateway: LocalGateway) -> Iterator[float]:
    emulator = gateway.stack.emulator
    assert emulator is not None
    emulator.invoke_timeout, saved = 1.0, emulator.invoke_timeout
    yield emulator.invoke_timeout
    emulator.invoke_timeout = saved
