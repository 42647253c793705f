"""What to deploy: the `emd:*` context (cdk.json or `-c`) read into typed objects.

    emd:prefix    stack name prefix (default `EMD`)
    emd:models    [{"id", "tag"?, "instance_type"?, "min_capacity"?, "max_capacity"?,
                  "media_domains"?, "scale_to_zero"?}], a list in cdk.json or the same
                  list as a JSON string with -c. media_domains: the hostnames a vLLM
                  vision model's container may download image/video URLs from (unset:
                  none, data: URLs only). scale_to_zero: true, or {"idle_minutes"?,
                  "max_copies"?}: the model becomes an inference component that scales
                  to zero instances when idle (off by default; see ScaleToZero).
                  endpoint: the `emd:endpoints` group whose instance the model shares
                  as an inference component (no instance_type or capacities then)
    emd:endpoints {"<group>": {"instance_type", "max_instances"?}}: shared endpoints,
                  one instance type each, whose members (models naming the group) run
                  as inference components on whole GPUs of it (see SharedEndpoint)
    emd:throttle  {"rate_limit"?, "burst_limit"?}: API Gateway stage throttling
    emd:web_acl_arn  optional AWS WAFv2 web ACL (REGIONAL) to attach to the API stage
    emd:reserved_concurrency  {"<family>" | "authorizer": n}: reserved concurrency of
                  family Lambdas and of the authorizer (unset: none reserved, they share
                  the account's pool)
    emd:key_limits  {"rate"?, "burst"?, "quota"?, "quota_period"?}: each API key's
                  limits at API Gateway where its own `limits` leave a field out
                  (default {"rate": 10, "burst": 20}: no quota; {} for none)
    emd:authorizer_cache_seconds  how long API Gateway caches the authorizer's answer
                  per key (0-3600, default 300)
    emd:waf       {"rate_limit": n}: create a WAF web ACL whose rate-based rule blocks
                  an IP above n requests per 5 minutes (opt-in; not with emd:web_acl_arn)

Every mistake fails synth with one message that names the valid choices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emd_proxy.auth import KeyDocumentError, KeyLimits, parse_key_limits
from emd_proxy.families import BY_NAME
from emd_proxy.registry import Family, Registry, RegistryEntry, endpoint_name

from .catalog import INSTANCE_TYPES, CatalogModel, InstanceType, lookup
from .images import CatalogError

DEFAULT_PREFIX = "EMD"
DEFAULT_TAG = "dev"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
# The tag of a shared endpoint's name, `<prefix>-<group>-shared`.
SHARED_TAG = "shared"
# A DNS hostname: dot-separated labels of letters, digits and inner hyphens. vLLM
# compares a URL's hostname to each entry exactly, so no wildcards, schemes or ports.
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
# SageMaker's limit on one container environment value (the domains' JSON array).
_ENV_VALUE_MAX = 1024
_M = TypeVar("_M", bound=BaseModel)


class ConfigError(ValueError):
    """The `emd:*` context is wrong; the message says how."""


class ScaleToZero(BaseModel):
    """`scale_to_zero` of a model: it is served as a SageMaker inference component on
    an endpoint whose instances scale between 0 and `max_copies` (one copy uses a whole
    instance), so an idle model costs nothing; the first request after idling waits for
    an instance and the model load (minutes), which the gateway holds or answers 503."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Target tracking's scale-in cooldown: at least this long between two scale-ins
    # (the last copy included). Application Auto Scaling's own low alarm needs about
    # 15 minutes of quiet before the first one (README, Scale to zero).
    idle_minutes: int = Field(default=15, ge=5, le=1440, strict=True)
    # Copies (and instances) at most, under load.
    max_copies: int = Field(default=1, ge=1, le=100, strict=True)

    @property
    def idle_seconds(self) -> int:
        return self.idle_minutes * 60


class ModelChoice(BaseModel):
    """One entry of `emd:models`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tag: str = DEFAULT_TAG
    instance_type: str | None = None
    # A model endpoint runs at least one instance (only scale_to_zero goes below).
    min_capacity: int = Field(default=1, ge=1, le=100)
    max_capacity: int | None = Field(default=None, ge=1, le=100)
    # Hostnames the container may download media URLs from (vLLM vision models only).
    media_domains: tuple[str, ...] | None = None
    # Off unless set: `true` takes the defaults, an object sets them.
    scale_to_zero: ScaleToZero | None = None
    # The `emd:endpoints` group the model shares an instance in.
    endpoint: str | None = None

    @field_validator("scale_to_zero", mode="before")
    @classmethod
    def _check_scale_to_zero(cls, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return {}
        if not isinstance(value, dict):
            raise ValueError(
                'must be true, false or an object like {"idle_minutes": 15, "max_copies": 2}, '
                f"not {value!r}"
            )
        return value

    @field_validator("media_domains", mode="before")
    @classmethod
    def _check_media_domains(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not all(isinstance(d, str) for d in value):
            raise ValueError(
                f'must be a list of hostnames like ["images.example.com"], not {value!r}'
            )
        bad = [d for d in value if not _HOSTNAME.fullmatch(d)]
        if bad:
            raise ValueError(
                f"{bad} are not hostnames: list each host exactly as it appears in image "
                'URLs, lowercase, e.g. ["images.example.com"] (vLLM matches whole '
                "hostnames, so no scheme, port, path or wildcard)"
            )
        if len(json.dumps(list(value))) > _ENV_VALUE_MAX:
            raise ValueError(
                f"longer than SageMaker's {_ENV_VALUE_MAX}-character limit for one "
                "environment value as a JSON array; list fewer hosts"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> ModelChoice:
        if not _TAG.fullmatch(self.tag):
            raise ValueError(
                f"tag {self.tag!r} must be 1-32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if self.max_capacity is not None and self.max_capacity < self.min_capacity:
            raise ValueError(
                f"max_capacity ({self.max_capacity}) is below min_capacity ({self.min_capacity})"
            )
        capacities = sorted({"min_capacity", "max_capacity"} & self.model_fields_set)
        if self.scale_to_zero is not None and capacities:
            raise ValueError(
                f"{' and '.join(capacities)} do not apply with scale_to_zero: its instances "
                "scale between 0 and scale_to_zero.max_copies (e.g. "
                '{"scale_to_zero": {"max_copies": 3}}); drop them'
            )
        own = sorted({"instance_type", "min_capacity", "max_capacity"} & self.model_fields_set)
        if self.endpoint is not None and own:
            raise ValueError(
                f"{' and '.join(own)} do not apply with endpoint {self.endpoint!r}: the "
                "model runs on that group's instance type (emd:endpoints), one copy at "
                "rest, or 0 to scale_to_zero.max_copies with scale_to_zero; drop them"
            )
        return self


class EndpointGroup(BaseModel):
    """One entry of `emd:endpoints`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_type: str
    # Managed instance scaling's ceiling: the instances the members' copies may fill.
    max_instances: int = Field(default=1, ge=1, le=100, strict=True)


class Throttle(BaseModel):
    """Stage-wide API Gateway throttling (requests per second, and burst)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit: float = Field(default=50.0, gt=0)
    burst_limit: int = Field(default=100, ge=1)


class Waf(BaseModel):
    """The web ACL the stack creates: one rate-based rule per client IP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # WAF counts requests per IP over a 5 minute window; 10 is its minimum.
    rate_limit: int = Field(default=2000, ge=10, le=2_000_000_000)


# Each key's API Gateway limits unless its `limits` say otherwise: 10 requests per
# second with bursts of 20, no quota (a deployment opts into quotas per key or here).
DEFAULT_KEY_LIMITS = KeyLimits(rate=10.0, burst=20)
DEFAULT_AUTHORIZER_CACHE_SECONDS = 300
RESERVED_AUTHORIZER = "authorizer"


def slug(text: str) -> str:
    """Lowercase, non-alphanumeric runs as `-` (stack and endpoint names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class SharedEndpoint:
    """An `emd:endpoints` group: one endpoint (its own stack) whose instances its
    members share as inference components. SageMaker gives a component whole
    accelerators (NumberOfAcceleratorDevicesRequired, at least 1), so GPU models never
    share a GPU: the members' accelerators together must fit one instance."""

    prefix: str
    name: str
    instance: InstanceType
    max_instances: int
    # 0 when a member scales to zero (its last copy may leave the instance empty).
    min_instances: int
    # The members' host AMI (they must agree: the variant has one).
    inference_ami_version: str | None
    members: tuple[str, ...]  # public ids

    @property
    def endpoint_name(self) -> str:
        """`<prefix>-<group>-shared`, with registry.endpoint_name's rules."""
        return endpoint_name(self.name, SHARED_TAG, prefix=self.prefix)

    @property
    def stack_name(self) -> str:
        return f"{self.prefix}-Endpoint-{slug(self.name)}"


@dataclass(frozen=True)
class ModelDeployment:
    """One chosen model resolved against the catalog."""

    prefix: str
    choice: ModelChoice
    catalog: CatalogModel
    # The group's instance type for a member of a shared endpoint.
    instance: InstanceType
    shared: SharedEndpoint | None = None
    # A member's whole GPUs on the shared instance (None: it has the instance to itself).
    accelerators: int | None = None

    @property
    def public_id(self) -> str:
        return f"{self.catalog.model}/{self.choice.tag}"

    @property
    def own_name(self) -> str:
        """`<prefix>-<model>-<tag>` (lowercased, at most 63 characters): two prefixes in
        one account and region never share an endpoint, nor its log group. Its
        endpoint's name, or its inference component's."""
        return endpoint_name(self.catalog.model, self.choice.tag, prefix=self.prefix)

    @property
    def endpoint_name(self) -> str:
        """The SageMaker endpoint invoked for the model: its own, or the shared one."""
        return self.shared.endpoint_name if self.shared is not None else self.own_name

    @property
    def stack_name(self) -> str:
        return f"{self.prefix}-Model-{slug(self.catalog.model)}-{slug(self.choice.tag)}"

    @property
    def families(self) -> list[Family]:
        return list(self.catalog.families)

    @property
    def scale_to_zero(self) -> ScaleToZero | None:
        return self.choice.scale_to_zero

    @property
    def inference_component(self) -> str | None:
        """The inference component's name (the model's own name: components and
        endpoints are separate namespaces), or None for a plain endpoint."""
        if self.scale_to_zero is not None or self.shared is not None:
            return self.own_name
        return None

    @property
    def min_capacity(self) -> int:
        """Instances at rest (0 for a scale-to-zero model: what `emd doctor` prices);
        for a member of a shared endpoint, copies (its group's instances are counted
        once, SharedEndpoint)."""
        if self.scale_to_zero is not None:
            return 0
        if self.shared is not None:
            return 1
        return self.choice.min_capacity

    @property
    def max_capacity(self) -> int:
        """Instances at most (what the GPU quota must allow); copies for a member of a
        shared endpoint."""
        if self.scale_to_zero is not None:
            return self.scale_to_zero.max_copies
        if self.shared is not None:
            return 1
        return self.choice.max_capacity or self.choice.min_capacity

    def registry_entry(self) -> RegistryEntry:
        metadata: dict[str, Any] = {}
        if self.catalog.max_model_len:
            metadata["max_model_len"] = self.catalog.max_model_len
        return RegistryEntry(
            id=self.public_id,
            model=self.catalog.model,
            tag=self.choice.tag,
            endpoint=self.endpoint_name,
            engine=self.catalog.engine,
            families=self.families,
            features=self.catalog.features,
            defaults=dict(self.catalog.defaults),
            decode_tokens_per_second=self.catalog.decode_tokens_per_second,
            inference_component=self.inference_component,
            wake_seconds=self.catalog.wake_seconds if self.scale_to_zero is not None else None,
            # Fixed, so the same context always renders the same bundle (and asset hash).
            created=0,
            metadata=metadata,
        )


@dataclass(frozen=True)
class DeployConfig:
    prefix: str
    models: tuple[ModelDeployment, ...]
    throttle: Throttle
    web_acl_arn: str | None = None
    # Family Lambda name (emd_proxy.families) or "authorizer" -> its reserved concurrency.
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)
    key_limits: KeyLimits | None = DEFAULT_KEY_LIMITS
    authorizer_cache_seconds: int = DEFAULT_AUTHORIZER_CACHE_SECONDS
    waf: Waf | None = None
    endpoints: tuple[SharedEndpoint, ...] = ()

    @property
    def api_stack_name(self) -> str:
        return f"{self.prefix}-API"

    def endpoints_of(self, family: str) -> list[str]:
        """The endpoints serving `family` (a shared one once, whatever its members)."""
        return list(dict.fromkeys(m.endpoint_name for m in self.models if family in m.families))

    def components_of(self, family: str, *, waking: bool = False) -> list[str]:
        """The inference components serving `family` (scale-to-zero models and members
        of shared endpoints); `waking`: only those that scale to zero."""
        return [
            m.inference_component
            for m in self.models
            if family in m.families
            and m.inference_component is not None
            and (not waking or m.scale_to_zero is not None)
        ]

    def members_of(self, shared: SharedEndpoint) -> list[ModelDeployment]:
        return [m for m in self.models if m.shared == shared]

    def check_region(self, region: str) -> None:
        """Every chosen image must be published in `region` (known at synth)."""
        for m in self.models:
            try:
                m.catalog.image.account(region)
            except CatalogError as exc:
                raise ConfigError(f"{m.public_id} in {region}: {exc}") from exc

    def registry_json(self) -> str:
        return Registry(m.registry_entry() for m in self.models).to_json()


def load(get: Callable[[str], Any]) -> DeployConfig:
    """Reads the context through `get` (e.g. `app.node.try_get_context`)."""
    prefix = get("emd:prefix") or DEFAULT_PREFIX
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"emd:prefix {prefix!r} must be 1-32 letters, digits or '-', starting with a letter"
        )
    throttle = _parse(
        Throttle, _json_value(get("emd:throttle"), "emd:throttle") or {}, "emd:throttle"
    )
    web_acl_arn = get("emd:web_acl_arn") or None
    if web_acl_arn is not None and not (
        isinstance(web_acl_arn, str)
        and re.fullmatch(r"arn:aws[\w-]*:wafv2:.+:regional/webacl/.+", web_acl_arn)
    ):
        raise ConfigError(f"emd:web_acl_arn {web_acl_arn!r} is not a REGIONAL WAFv2 web ACL ARN")
    waf_value = _json_value(get("emd:waf"), "emd:waf")
    waf = _parse(Waf, waf_value, "emd:waf") if waf_value is not None else None
    if waf is not None and web_acl_arn is not None:
        raise ConfigError(
            "emd:waf and emd:web_acl_arn both attach a web ACL to the stage, which takes "
            "one: add a rate-based rule to your own web ACL, or drop emd:web_acl_arn"
        )
    models, endpoints = _models(prefix, get("emd:models"), get("emd:endpoints"))
    return DeployConfig(
        prefix=prefix,
        models=models,
        endpoints=endpoints,
        throttle=throttle,
        web_acl_arn=web_acl_arn,
        reserved_concurrency=_reserved_concurrency(get("emd:reserved_concurrency")),
        key_limits=_key_limits(get("emd:key_limits")),
        authorizer_cache_seconds=_cache_seconds(get("emd:authorizer_cache_seconds")),
        waf=waf,
    )


def _key_limits(raw: Any) -> KeyLimits | None:
    """The key document's `limits` format (auth.parse_key_limits), so the default and
    a key's own limits are the same thing; `{}` means no default limits."""
    value = _json_value(raw, "emd:key_limits")
    if value is None:
        return DEFAULT_KEY_LIMITS
    try:
        return parse_key_limits("emd:key_limits", value)
    except KeyDocumentError as exc:
        # Its messages name a key's field ('key "x": "limits.rate" ...'): say ours.
        message = str(exc).replace('key "emd:key_limits":', "emd:key_limits:")
        raise ConfigError(message.replace('"limits.', '"')) from exc


def _cache_seconds(raw: Any) -> int:
    value = _json_value(raw, "emd:authorizer_cache_seconds")
    if value is None:
        return DEFAULT_AUTHORIZER_CACHE_SECONDS
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
        raise ConfigError(
            "emd:authorizer_cache_seconds must be a whole number of seconds from 0 (no "
            f"cache) to 3600 (API Gateway's maximum), not {value!r}"
        )
    return value


def _reserved_concurrency(raw: Any) -> dict[str, int]:
    """`{"chat": 20, "audio": 5}`: each named family Lambda keeps (and is capped at)
    that many concurrent executions; the others share the account's unreserved pool."""
    value = _json_value(raw, "emd:reserved_concurrency")
    if value is None:
        return {}
    families = ", ".join([*BY_NAME, RESERVED_AUTHORIZER])
    if not isinstance(value, dict):
        raise ConfigError(
            'emd:reserved_concurrency must be an object like {"chat": 20}, with family '
            f"names among {families}; not {type(value).__name__}"
        )
    reserved: dict[str, int] = {}
    for family, count in value.items():
        if family not in BY_NAME and family != RESERVED_AUTHORIZER:
            raise ConfigError(
                f"emd:reserved_concurrency: unknown family {family!r}; families: {families}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10000:
            raise ConfigError(
                f"emd:reserved_concurrency.{family} must be a whole number from 1 to 10000, "
                f"not {count!r}"
            )
        reserved[family] = count
    return reserved


def _models(
    prefix: str, raw: Any, raw_groups: Any
) -> tuple[tuple[ModelDeployment, ...], tuple[SharedEndpoint, ...]]:
    groups = _endpoint_groups(raw_groups)
    value = _json_value(raw, "emd:models")
    if value is None:
        value = []
    if not isinstance(value, list):
        raise ConfigError(
            'emd:models must be a list like [{"id": "Qwen3-8B", "tag": "dev"}], '
            f"not {type(value).__name__}"
        )
    resolved: list[_Resolved] = []
    for index, item in enumerate(value):
        where = f"emd:models[{index}]"
        choice = _parse(ModelChoice, item, where)
        try:
            catalog = lookup(choice.id)
        except CatalogError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if choice.media_domains is not None and not catalog.fetches_media:
            raise ConfigError(
                f"{where}: media_domains apply only to models whose container downloads "
                f"media URLs (vLLM models with the vision, video or audio feature); "
                f"{catalog.model} ({catalog.engine}) has none"
            )
        if choice.endpoint is None:
            try:
                instance = catalog.instance(choice.instance_type)
            except CatalogError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            resolved.append(_Resolved(choice, catalog, instance, None))
            continue
        group = groups.get(choice.endpoint)
        if group is None:
            known = (
                ", ".join(sorted(groups))
                or 'none (define it in emd:endpoints: {"<group>": {"instance_type": ...}})'
            )
            raise ConfigError(
                f"{where}: endpoint {choice.endpoint!r} is not a group of emd:endpoints; "
                f"groups: {known}"
            )
        instance = INSTANCE_TYPES[group.instance_type]
        resolved.append(
            _Resolved(choice, catalog, instance, _accelerators(where, catalog, instance))
        )

    shared = {
        name: _shared_endpoint(
            prefix, name, group, [r for r in resolved if r.choice.endpoint == name]
        )
        for name, group in groups.items()
    }
    deployments = [
        ModelDeployment(
            prefix,
            choice,
            catalog,
            instance,
            shared=shared[choice.endpoint] if choice.endpoint is not None else None,
            accelerators=accelerators,
        )
        for choice, catalog, instance, accelerators in resolved
    ]
    _check_unique(deployments)
    _check_shared_names(deployments, list(shared.values()))
    return tuple(deployments), tuple(shared.values())


class _Resolved(NamedTuple):
    choice: ModelChoice
    catalog: CatalogModel
    instance: InstanceType
    accelerators: int | None  # on a shared instance


def _endpoint_groups(raw: Any) -> dict[str, EndpointGroup]:
    value = _json_value(raw, "emd:endpoints")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            'emd:endpoints must be an object like {"shared-small": {"instance_type": '
            f'"ml.g5.12xlarge", "max_instances": 1}}}}, not {type(value).__name__}'
        )
    groups: dict[str, EndpointGroup] = {}
    for name, item in value.items():
        where = f"emd:endpoints.{name}"
        if not _GROUP.fullmatch(name):
            raise ConfigError(
                f"{where}: a group name is 1-32 letters, digits or '-', starting with a "
                "letter or digit"
            )
        group = _parse(EndpointGroup, item, where)
        if group.instance_type not in INSTANCE_TYPES:
            raise ConfigError(
                f"{where}: instance type {group.instance_type!r} is not in the catalog; "
                f"choose one of: {', '.join(INSTANCE_TYPES)}"
            )
        groups[name] = group
    return groups


def _instance_family(instance_type: str) -> str:
    return instance_type.removeprefix("ml.").split(".", 1)[0]


def _accelerators(where: str, catalog: CatalogModel, instance: InstanceType) -> int:
    """The GPUs a member takes on `instance`: the fewest its catalog entry runs on with
    the same GPU (the same instance family), e.g. 1 for bge-m3 on ml.g5.12xlarge (it
    runs on ml.g5.xlarge); the container's tensor parallelism follows it."""
    family = _instance_family(instance.name)
    counts = [
        INSTANCE_TYPES[t].gpus for t in catalog.instance_types if _instance_family(t) == family
    ]
    if not counts:
        raise ConfigError(
            f"{where}: {catalog.model} does not run on {family} GPUs ({instance.name}); "
            f"its instance types: {', '.join(catalog.instance_types)}"
        )
    return min(counts)


def _shared_endpoint(
    prefix: str,
    name: str,
    group: EndpointGroup,
    members: list[_Resolved],
) -> SharedEndpoint:
    where = f"emd:endpoints.{name}"
    instance = INSTANCE_TYPES[group.instance_type]
    if not members:
        raise ConfigError(
            f'{where}: no model names it; add "endpoint": "{name}" to models in '
            "emd:models, or drop the group"
        )
    needs = {f"{m.choice.id}/{m.choice.tag}": m.accelerators or 0 for m in members}
    if sum(needs.values()) > instance.gpus:
        listed = ", ".join(f"{model} {n}" for model, n in needs.items())
        raise ConfigError(
            f"{where}: its members need {sum(needs.values())} GPUs ({listed}), more than "
            f"the {instance.gpus} of one {instance.name}: inference components take whole "
            "GPUs, so choose an instance type with more, or move a model to another group"
        )
    for m in members:
        copies = m.choice.scale_to_zero.max_copies if m.choice.scale_to_zero else 1
        gpus = copies * (m.accelerators or 0)
        if gpus > instance.gpus * group.max_instances:
            raise ConfigError(
                f"{where}: {m.choice.id}/{m.choice.tag}'s scale_to_zero.max_copies {copies} "
                f"need {gpus} GPUs, more than {group.max_instances} "
                f"{instance.name} ({instance.gpus} GPUs each) have: raise max_instances "
                "or lower max_copies"
            )
    amis = {m.catalog.inference_ami_version for m in members}
    if len(amis) > 1:
        listed = ", ".join(
            f"{m.choice.id}/{m.choice.tag} {m.catalog.inference_ami_version}" for m in members
        )
        raise ConfigError(
            f"{where}: its members need different host AMIs ({listed}) and an endpoint "
            "has one: group models of the same AMI"
        )
    return SharedEndpoint(
        prefix=prefix,
        name=name,
        instance=instance,
        max_instances=group.max_instances,
        min_instances=0 if any(m.choice.scale_to_zero for m in members) else 1,
        inference_ami_version=amis.pop(),
        members=tuple(needs),
    )


def _check_shared_names(deployments: list[ModelDeployment], shared: list[SharedEndpoint]) -> None:
    # A shared endpoint's name must not be a standalone model's endpoint (nor its log
    # group); components are a namespace of their own.
    taken = {d.endpoint_name: d.public_id for d in deployments if d.shared is None}
    for s in shared:
        if s.endpoint_name in taken:
            raise ConfigError(
                f"emd:endpoints.{s.name}: its endpoint name {s.endpoint_name!r} is also "
                f"{taken[s.endpoint_name]}'s; rename the group"
            )
        taken[s.endpoint_name] = f"emd:endpoints.{s.name}"


def _check_unique(deployments: list[ModelDeployment]) -> None:
    # Two choices may differ only in case or punctuation and still collide on the
    # stack or endpoint name, which CloudFormation would report much later.
    # own_name: the endpoint's name, or a shared endpoint member's component's.
    labels = {"public_id": "public id", "stack_name": "stack name", "own_name": "endpoint name"}
    for attribute, label in labels.items():
        seen: dict[str, str] = {}
        for d in deployments:
            key = getattr(d, attribute)
            if key in seen:
                raise ConfigError(
                    f"emd:models: {seen[key]} and {d.public_id} have the same "
                    f"{label} {key!r}; give one of them another tag"
                )
            seen[key] = d.public_id


def _json_value(raw: Any, name: str) -> Any:
    """`-c key=value` arrives as a string; cdk.json gives JSON values directly."""
    if not isinstance(raw, str):
        return raw
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc


def _parse(model: type[_M], value: Any, where: str) -> _M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from exc
