"""The `emd` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="EMD gateway: an OpenAI-compatible API for models on SageMaker.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="EMD_API_KEY",
            help="Key clients must send (default: the saved local key, created on first run).",
            show_default=False,
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Serve only these local models (repeatable)."),
    ] = None,
    invoke_timeout: Annotated[
        float, typer.Option(help="InvokeEndpoint time limit of the local emulator, seconds.")
    ] = 60.0,
    *,
    scale_to_zero_after: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Scale to zero: unload a model after this many seconds with no request; "
            "the gateway wakes it (reloads it) on the next one. Off by default.",
            show_default=False,
        ),
    ] = None,
    echo_load_seconds: Annotated[
        float,
        typer.Option(
            min=0.0, help="With scale to zero: the simulated load time of the echo models."
        ),
    ] = 2.0,
) -> None:
    """Run the gateway locally with small real models, through the SageMaker code path."""
    from .serve import run_local

    raise typer.Exit(
        run_local(
            host,
            port,
            api_key,
            models,
            invoke_timeout,
            scale_to_zero_after=scale_to_zero_after,
            echo_load_seconds=echo_load_seconds,
        )
    )


Prefix = Annotated[
    str, typer.Option(help="Stack name prefix (`emd:prefix` in cdk.json).", show_default=True)
]
Region = Annotated[
    str | None,
    typer.Option(help="AWS region (default: from the AWS config).", show_default=False),
]
ShowKey = Annotated[bool, typer.Option("--show-key", help="Print keys in full.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Local = Annotated[
    bool, typer.Option("--local", help="The local `emd serve` instead of a deployment.")
]


@app.command()
def status(
    *,
    prefix: Prefix = "EMD",
    region: Region = None,
    show_key: ShowKey = False,
    as_json: AsJson = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh until every endpoint is InService or Failed.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0, help="Seconds between refreshes with --watch.")
    ] = 15.0,
    local: Local = False,
) -> None:
    """Where the deployed API is, its key, and whether each model is ready."""
    from .status_cmd import run_status

    raise typer.Exit(
        run_status(
            prefix=prefix,
            region=region,
            show_key=show_key,
            as_json=as_json,
            watching=watch,
            interval=interval,
            local=local,
        )
    )


@app.command()
def doctor(
    *,
    context: Annotated[
        list[str] | None,
        typer.Option(
            "--context",
            "-c",
            help="Context override key=value, as `cdk deploy -c` takes it (repeatable).",
            show_default=False,
        ),
    ] = None,
    region: Region = None,
    profile: Annotated[
        str | None,
        typer.Option(help="AWS profile (default: AWS_PROFILE or the default).", show_default=False),
    ] = None,
    app_dir: Annotated[
        Path, typer.Option(help="Directory with the cdk.json to read.", show_default=True)
    ] = Path("."),
    toolkit_stack_name: Annotated[
        str | None,
        typer.Option(
            help="CDK bootstrap stack (default: cdk.json's toolkitStackName or CDKToolkit).",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Preflight for `cdk deploy --all` (read-only): credentials, bootstrap, GPU quotas,
    images, name collisions and cost; exit code 1 on a blocker."""
    from .doctor_cmd import run_doctor

    raise typer.Exit(
        run_doctor(
            app_dir=app_dir,
            context=context,
            region=region,
            profile=profile,
            toolkit_stack_name=toolkit_stack_name,
            as_json=as_json,
        )
    )


keys_app = typer.Typer(
    help="Manage API keys: the deployment's secret, or keys.json of `emd serve` (--local).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


Rate = Annotated[
    float | None,
    typer.Option(help="Requests per second this key may make (steady state).", show_default=False),
]
Burst = Annotated[
    int | None,
    typer.Option(
        help="Requests it may make at once (default: the rate, rounded up).", show_default=False
    ),
]
Quota = Annotated[
    int | None,
    typer.Option(help="Requests per quota period (calendar, UTC).", show_default=False),
]
QuotaPeriod = Annotated[
    str | None,
    typer.Option("--quota-period", help="DAY (default), WEEK or MONTH.", show_default=False),
]


@keys_app.command("list")
def keys_list(
    prefix: Prefix = "EMD",
    region: Region = None,
    local: Local = False,
    show_key: ShowKey = False,
    as_json: AsJson = False,
) -> None:
    """Names, scopes, limits and (masked) keys."""
    from . import keys_cmd

    raise typer.Exit(
        keys_cmd.run(
            lambda: keys_cmd.list_keys(
                keys_cmd.Target(local=local, prefix=prefix, region=region), show_key, as_json
            )
        )
    )


@keys_app.command("create")
def keys_create(
    *,
    name: Annotated[str, typer.Option(help="Name of the new key (shows up in logs).")],
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            "--model",
            "-m",
            help="Model ids this key may use (repeatable or comma-separated; default: all).",
            show_default=False,
        ),
    ] = None,
    rate: Rate = None,
    burst: Burst = None,
    quota: Quota = None,
    quota_period: QuotaPeriod = None,
    prefix: Prefix = "EMD",
    region: Region = None,
    local: Local = False,
) -> None:
    """Create a key and print it (once)."""
    from . import keys_cmd
    from .keys import limits_from_options, split_models

    raise typer.Exit(
        keys_cmd.run(
            lambda: keys_cmd.create(
                keys_cmd.Target(local=local, prefix=prefix, region=region),
                name,
                split_models(models),
                limits_from_options(rate, burst, quota, quota_period),
            )
        )
    )


@keys_app.command("limits")
def keys_limits(
    name: Annotated[str, typer.Argument(help="Name of the key.")],
    *,
    rate: Rate = None,
    burst: Burst = None,
    quota: Quota = None,
    quota_period: QuotaPeriod = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the key's limits.")] = False,
    prefix: Prefix = "EMD",
    region: Region = None,
    local: Local = False,
) -> None:
    """Set a key's own limits to exactly the ones given (or remove them with --clear)."""
    from . import keys_cmd
    from .errors import CliError
    from .keys import limits_from_options

    def action() -> None:
        limits = limits_from_options(rate, burst, quota, quota_period)
        if clear == (limits is not None):
            raise CliError("give --rate/--burst/--quota/--quota-period, or --clear (not both)")
        keys_cmd.set_limits(
            keys_cmd.Target(local=local, prefix=prefix, region=region), name, limits
        )

    raise typer.Exit(keys_cmd.run(action))


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="Name of the key to revoke.")],
    prefix: Prefix = "EMD",
    region: Region = None,
    local: Local = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow revoking the last key (locks every client out).")
    ] = False,
) -> None:
    """Revoke a key; it stops working once the gateway's key cache expires."""
    from . import keys_cmd

    raise typer.Exit(
        keys_cmd.run(
            lambda: keys_cmd.revoke(
                keys_cmd.Target(local=local, prefix=prefix, region=region), name, force
            )
        )
    )


@keys_app.command("rotate")
def keys_rotate(
    name: Annotated[str, typer.Argument(help="Name of the key to replace.")],
    prefix: Prefix = "EMD",
    region: Region = None,
    local: Local = False,
) -> None:
    """Replace a key with a new one (same name and scope) and print it (once)."""
    from . import keys_cmd

    raise typer.Exit(
        keys_cmd.run(
            lambda: keys_cmd.rotate(
                keys_cmd.Target(local=local, prefix=prefix, region=region), name
            )
        )
    )


@keys_app.command("sync")
def keys_sync(prefix: Prefix = "EMD", region: Region = None) -> None:
    """Bring API Gateway's API keys and usage plans in line with the secret (each
    `emd keys` change does this itself; run it after editing the secret elsewhere)."""
    from . import keys_cmd

    raise typer.Exit(
        keys_cmd.run(
            lambda: keys_cmd.sync(keys_cmd.Target(local=False, prefix=prefix, region=region))
        )
    )


@app.callback()
def main() -> None:
    """EMD gateway command line."""
