"""The `emd` command line."""

from __future__ import annotations

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
) -> None:
    """Run the gateway locally with small real models, through the SageMaker code path."""
    from .serve import run_local

    raise typer.Exit(run_local(host, port, api_key, models, invoke_timeout))


@app.callback()
def main() -> None:
    """EMD gateway command line."""
