"""The one AWS boundary: calls to `sagemaker-runtime`, made on the event loop.

botocore does everything that must behave as the AWS SDK does: the credential chain,
endpoint resolution (`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` included), the rest-json
serializer, the error and event-stream parsers, the modeled exception classes, and the
standard retry mode's conditions, backoff and retry quota. Not botocore's: the HTTP hop
(one pooled aiohttp session on the event loop instead of urllib3 in a worker thread)
and the SigV4 arithmetic (sigv4.py: the same headers as botocore's signer, byte for
byte, without its per-call request objects). Against an instant backend that took a
streamed call from 0.92 ms (boto3 in a worker thread) or 0.91 ms (aiobotocore) to
about 0.6 ms with botocore's signer and 0.5 ms with sigv4.py, and it needs no thread
per request (see bench/README.md).

Every failure, of the call or of a later stream step, leaves here as a `ProxyError`
(sagemaker_errors.py). Retries happen only before the first byte of an answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import botocore.session
from botocore.awsrequest import AWSResponse, HeadersDict, prepare_request_dict
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.eventstream import _PRELUDE_LENGTH, EventStreamBuffer, EventStreamMessage
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.model import OperationModel
from botocore.parsers import EventStreamJSONParser, create_parser
from botocore.retries import quota, standard
from botocore.serialize import create_serializer
from botocore.utils import get_environ_proxies

from .sagemaker_errors import map_upstream_error
from .sigv4 import SigV4Signer

if TYPE_CHECKING:
    from .settings import Settings

# Runs a blocking call (a credential refresh may call STS or the metadata service)
# somewhere that is not the event loop.
Offload = Callable[[Callable[[], ReadOnlyCredentials]], Awaitable[ReadOnlyCredentials]]

INVOKE = "InvokeEndpoint"
INVOKE_STREAM = "InvokeEndpointWithResponseStream"


@dataclass(frozen=True)
class _Prepared:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class UpstreamCall:
    """One request to an endpoint, as an engine adapter prepared it."""

    body: bytes
    content_type: str = "application/json"
    accept: str | None = None
    custom_attributes: str | None = None


@dataclass(frozen=True)
class UpstreamResponse:
    body: bytes
    content_type: str


class SageMakerRuntime:
    """`InvokeEndpoint` and `InvokeEndpointWithResponseStream`, async."""

    def __init__(
        self,
        settings: Settings,
        session: botocore.session.Session | None = None,
        offload: Offload | None = None,
    ) -> None:
        self._session = session or botocore.session.get_session()
        # Never called: it resolves the endpoint and region, and holds the service model
        # and the modeled exception classes, exactly as for a boto3 client.
        self._client = self._session.create_client("sagemaker-runtime")
        meta = self._client.meta
        self._endpoint_url: str = meta.endpoint_url
        self._region: str = meta.region_name
        model = meta.service_model
        self._signer = SigV4Signer(model.signing_name, self._region)
        self._templates: dict[tuple[Any, ...], tuple[str, dict[str, str]]] = {}
        self._operations = {name: model.operation_model(name) for name in (INVOKE, INVOKE_STREAM)}
        self._serializer = create_serializer(model.protocol, include_validation=False)
        self._parser = create_parser(model.protocol)
        self._events = _EventDecoder(self._operations[INVOKE_STREAM])
        self._user_agent = f"emd-gateway {self._session.user_agent()}"
        throttling = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._retry = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(
                max_attempts=settings.upstream_max_attempts
            ),
            retry_backoff=standard.ExponentialBackoff(
                service_name=model.service_id.hyphenize(), throttling_detector=throttling
            ),
        )
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota(), throttling)
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout_seconds,
            sock_read=settings.upstream_timeout_seconds,
        )
        self._pool_size = settings.max_concurrency
        # The proxy botocore would use for this endpoint (HTTP(S)_PROXY, NO_PROXY).
        scheme = self._endpoint_url.split(":", 1)[0]
        self._proxy: str | None = get_environ_proxies(self._endpoint_url).get(scheme)
        self._offload = offload
        self._credentials: Credentials | None = None
        self._http: aiohttp.ClientSession | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None

    # --- the two calls --------------------------------------------------------------
    async def invoke(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_component: str | None = None,
    ) -> UpstreamResponse:
        params = _params(
            endpoint,
            body,
            content_type,
            accept,
            custom_attributes,
            inference_component=inference_component,
        )
        try:
            response, payload = await self._call(INVOKE, params)
        except Exception as exc:
            raise map_upstream_error(exc, endpoint) from exc
        return UpstreamResponse(payload, response.headers.get("Content-Type") or "application/json")

    async def open_stream(
        self,
        endpoint: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str | None = None,
        custom_attributes: str | None = None,
        inference_component: str | None = None,
    ) -> UpstreamStream:
        """The stream once SageMaker accepted the call (a failure to start raises
        here); its parts are read as they arrive."""
        params = _params(
            endpoint,
            body,
            content_type,
            accept,
            custom_attributes,
            inference_component=inference_component,
        )
        try:
            response, _ = await self._call(INVOKE_STREAM, params)
        except Exception as exc:
            raise map_upstream_error(exc, endpoint) from exc
        return UpstreamStream(response, endpoint, self._events)

    async def aclose(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()

    # --- one call, retried as botocore's standard mode retries ---------------------
    async def _call(
        self, operation_name: str, params: dict[str, Any]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """The 2xx response (with its body read unless it streams). Failures raise as
        botocore raises them, so retries and error mapping are the SDK's."""
        operation = self._operations[operation_name]
        streaming = operation.has_event_stream_output
        http = self._http_session()
        request_context: dict[str, Any] = {}
        attempt = 1
        while True:
            prepared = self._prepare(operation, params, await self._frozen_credentials())
            parsed: dict[str, Any] | None = None
            caught: Exception | None = None
            status: AWSResponse | None = None
            try:
                response = await http.post(
                    prepared.url,
                    data=prepared.body,
                    headers=prepared.headers,
                    # botocore never follows a redirect (it would resend the signature).
                    allow_redirects=False,
                    proxy=self._proxy,
                )
                if response.status < 300:
                    payload = b"" if streaming else await response.read()
                    # The quota reads only the status of a success: no header copy.
                    self._quota.release_retry_quota(
                        request_context, AWSResponse(prepared.url, response.status, {}, None)
                    )
                    return response, payload
                status = _status_of(response)
                parsed = self._parse_error(operation, response, await response.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                caught = _transport_error(exc, prepared.url)
            context = standard.RetryContext(
                attempt_number=attempt,
                operation_model=operation,
                parsed_response=parsed,
                http_response=status,
                caught_exception=caught,
                request_context=request_context,
            )
            if not (self._retry.should_retry(context) and self._quota.acquire_retry_quota(context)):
                if caught is not None:
                    raise caught
                assert parsed is not None
                raise self._client_error(parsed, operation)
            await asyncio.sleep(self._retry.compute_retry_delay(context))
            attempt += 1

    def _prepare(
        self, operation: OperationModel, params: dict[str, Any], credentials: ReadOnlyCredentials
    ) -> _Prepared:
        """botocore's serialized request (URL, headers, body), signed. The URL and
        headers depend on everything but the body, so botocore serializes each
        combination once (a few dozen in a process) and the body goes in as it is."""
        key = (operation.name, *sorted((k, v) for k, v in params.items() if k != "Body"))
        template = self._templates.get(key)
        if template is None:
            request = self._serializer.serialize_to_request(params, operation)
            prepare_request_dict(request, self._endpoint_url, user_agent=self._user_agent)
            template = (request["url"], request["headers"])
            if len(self._templates) < _TEMPLATES_KEPT:
                self._templates[key] = template
        url, headers = template
        body: bytes = params["Body"]
        return _Prepared(url, self._signer.sign(url, headers, body, credentials), body)

    def _parse_error(
        self, operation: OperationModel, response: aiohttp.ClientResponse, body: bytes
    ) -> dict[str, Any]:
        """botocore's parse of an error answer, modeled fields (ModelError's
        OriginalStatusCode, ...) included, as its endpoint adds them."""
        response_dict = {
            "status_code": response.status,
            "headers": HeadersDict(response.headers),
            "body": body,
            "context": {"operation_name": operation.name},
        }
        parsed: dict[str, Any] = self._parser.parse(response_dict, operation.output_shape)
        code = parsed.get("Error", {}).get("Code")
        shape = operation.service_model.shape_for_error_code(code) if code else None
        if shape is not None:
            parsed.update(self._parser.parse(response_dict, shape))
        return parsed

    def _client_error(self, parsed: dict[str, Any], operation: OperationModel) -> ClientError:
        error_class = self._client.exceptions.from_code(parsed.get("Error", {}).get("Code"))
        return error_class(parsed, operation.name)  # type: ignore[no-any-return]

    # --- credentials and the connection pool ----------------------------------------
    async def _frozen_credentials(self) -> ReadOnlyCredentials:
        credentials = self._credentials
        if credentials is None or (
            isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed()
        ):
            # Resolving or refreshing may block on the network: not on the loop.
            if self._offload is not None:
                return await self._offload(self._resolve_credentials)
            return self._resolve_credentials()
        return credentials.get_frozen_credentials()

    def _resolve_credentials(self) -> ReadOnlyCredentials:
        if self._credentials is None:
            self._credentials = self._session.get_credentials()
            if self._credentials is None:
                raise NoCredentialsError()
        return self._credentials.get_frozen_credentials()

    def _http_session(self) -> aiohttp.ClientSession:
        """One pooled session per event loop (tests run several loops in one process)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl_context())
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # What is signed is sent as it is: no Accept or Accept-Encoding added
                # (urllib3 sends neither); the body is never transparently decoded.
                skip_auto_headers=("Accept", "Accept-Encoding"),
                auto_decompress=False,
            )
            self._http_loop = loop
        return self._http

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self._endpoint_url.startswith("https:"):
            return False
        ca_bundle = self._session.get_config_variable("ca_bundle")
        if ca_bundle:  # AWS_CA_BUNDLE / ca_bundle, as botocore honours it
            return ssl.create_default_context(cafile=ca_bundle)
        # aiohttp's own verified context over the system's CA store, which it builds
        # when imported: a context of our own would load a CA file again (30-50 ms of
        # a Lambda's first request). AWS endpoints chain to roots every store has.
        return True


class UpstreamStream:
    """An open `InvokeEndpointWithResponseStream` answer. `parts()` yields its
    PayloadParts' bytes as they arrive; ending early, or `close()`, drops the
    connection at once (an unfinished stream cannot go back to the pool)."""

    def __init__(
        self, response: aiohttp.ClientResponse, endpoint: str, events: _EventDecoder
    ) -> None:
        self.content_type: str = (
            response.headers.get("X-Amzn-SageMaker-Content-Type") or "application/octet-stream"
        )
        self._response = response
        self._endpoint = endpoint
        self._events = events

    async def parts(self, keepalive_seconds: float | None = None) -> AsyncIterator[bytes | None]:
        """Payload bytes as they arrive, and None after each `keepalive_seconds` of
        silence (so the caller can keep its client's connection alive)."""
        buffer = _EventBuffer()
        content = self._response.content
        try:
            while True:
                data = await _read_some(content, keepalive_seconds)
                if data is None:
                    yield None
                    continue
                if not data:
                    if buffer.unfinished():
                        # botocore ends such a stream quietly; the client would get a
                        # shortened answer that looks whole.
                        raise _StreamCut("the event stream ended inside a message")
                    return
                buffer.add_data(data)
                for message in buffer:
                    payload = self._events.payload(message)
                    if payload:
                        yield payload
        except Exception as exc:
            # A read timeout is the SDK's (504); any other break is "interrupted" (502).
            if isinstance(exc, TimeoutError):
                exc = _transport_error(exc, str(self._response.url))
            raise map_upstream_error(exc, self._endpoint) from exc
        finally:
            self.close()

    def close(self) -> None:
        # A fully read answer has already gone back to the pool; this drops the rest.
        self._response.close()


class _EventBuffer(EventStreamBuffer):
    """botocore's framing and checksums, with each distinct header block parsed once:
    every PayloadPart of a stream carries the same headers, and parsing them was most
    of the cost of decoding a message (6.7 -> 2.6 us; 17 per short answer)."""

    _KNOWN_LIMIT = 16  # distinct header blocks kept per stream

    def __init__(self) -> None:
        super().__init__()
        self._known: dict[bytes, dict[str, Any]] = {}

    def unfinished(self) -> bool:
        """Bytes of a message that has not arrived whole."""
        return bool(self._data)

    def _parse_headers(self) -> dict[str, Any]:
        raw = self._data[_PRELUDE_LENGTH : self._prelude.headers_end]
        headers = self._known.get(raw)
        if headers is None:
            headers = super()._parse_headers()
            if len(self._known) < self._KNOWN_LIMIT:
                self._known[raw] = headers
        return headers


class _StreamCut(Exception):
    """The answer's connection ended cleanly, but inside an event-stream message."""


class _EventDecoder:
    """Event-stream message -> PayloadPart bytes. A PayloadPart's payload *is* its bytes,
    so those skip the parser; everything else (ModelStreamError,
    InternalStreamFailure, events unknown today) goes through botocore's parser and
    raises as botocore's EventStream raises."""

    def __init__(self, operation: OperationModel) -> None:
        self._operation_name = operation.name
        self._shape = next(
            member
            for member in operation.output_shape.members.values()
            if member.serialization.get("eventstream")
        )
        self._parser = EventStreamJSONParser()

    def payload(self, message: EventStreamMessage) -> bytes | None:
        headers = message.headers
        if headers.get(":message-type") == "event" and headers.get(":event-type") == "PayloadPart":
            return message.payload  # type: ignore[no-any-return]
        response_dict = message.to_response_dict()
        parsed = self._parser.parse(response_dict, self._shape)
        if response_dict["status_code"] != 200:
            raise EventStreamError(parsed, self._operation_name)
        part = parsed.get("PayloadPart")
        return part.get("Bytes") if part else None


async def _read_some(content: aiohttp.StreamReader, wait: float | None) -> bytes | None:
    """What has arrived (b"" at the end), or None when `wait` seconds pass first. An
    unfinished read is safe to give up: what arrives later stays in the buffer."""
    # What is already here needs no timer (an instant answer is usually all here).
    data = content.read_nowait()
    if data or content.at_eof():
        return data
    if wait is None:
        return await content.readany()
    timeout = asyncio.timeout(wait)
    try:
        async with timeout:
            return await content.readany()
    except TimeoutError:
        if timeout.expired():
            return None
        raise  # aiohttp's own read timeout


def _transport_error(exc: Exception, url: str) -> Exception:
    """aiohttp's failure as the botocore exception urllib3's would have been, so the
    standard retry conditions and the error mapping treat it the same."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, TimeoutError):
        return ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return EndpointConnectionError(endpoint_url=url, error=exc)
    return HTTPClientError(error=exc)


def _status_of(response: aiohttp.ClientResponse) -> AWSResponse:
    """What botocore's retry code reads of an answer: its status and headers."""
    return AWSResponse(str(response.url), response.status, HeadersDict(response.headers), None)


_TEMPLATES_KEPT = 64  # multipart bodies bring a new boundary (Content-Type) each time


def _params(
    endpoint: str,
    body: bytes,
    content_type: str,
    accept: str | None,
    custom_attributes: str | None,
    *,
    inference_component: str | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"EndpointName": endpoint, "Body": body, "ContentType": content_type}
    if inference_component:
        # SageMaker requires it on an endpoint that hosts inference components.
        params["InferenceComponentName"] = inference_component
    if accept:
        params["Accept"] = accept
    if custom_attributes:
        params["CustomAttributes"] = custom_attributes
    return params
