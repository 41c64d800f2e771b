"""`personae models …`: register, list, disable and remove models."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.money import from_micros
from personae.cli.common import (
    JsonOpt,
    console,
    err_console,
    exit_on_error,
    print_json,
    print_record,
    print_table,
    run_in_session,
)
from personae.errors import InvalidRequest
from personae.model.service import ModelService, ModelType
from personae.models import Model

models = typer.Typer(help="Register and manage LLM and image models.", no_args_is_help=True)
SECRETS = {"api_key", "api_auth"}


def model_dict(model: Model) -> dict[str, Any]:
    settings = {k: ("***" if k in SECRETS else v) for k, v in model.settings.items()}
    return {
        "id": model.id,
        "type": model.type,
        "name": model.name,
        "engine": model.engine,
        "enabled": model.enabled,
        "max_context": model.max_context,
        "cost": from_micros(model.cost_micros),
        "settings": settings,
    }


def _settings(
    path: str | None,
    base_url: str | None,
    model_name: str | None,
    api_key: str | None,
    extra: str | None,
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if extra:
        try:
            loaded = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"--settings: not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidRequest("--settings: must be a JSON object")
        settings.update(loaded)
    given = {"path": path, "base_url": base_url, "model": model_name, "api_key": api_key}
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


@models.command("add")
def add(
    name: Annotated[str, typer.Option(help="Shown in the models list.")],
    engine: Annotated[
        str,
        typer.Option(
            help="llm: llama_cpp (a GGUF file) or openai (a server). "
            "sd: diffusers (a local checkpoint), automatic1111, openai or placeholder."
        ),
    ],
    type: Annotated[ModelType, typer.Option("--type", help="llm or sd.")] = ModelType.LLM,
    path: Annotated[
        str | None,
        typer.Option(
            help="llama_cpp: a .gguf file or builtin:smollm2. "
            "diffusers: a save_pretrained folder or a .safetensors file."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="openai: e.g. http://vllm:8000/v1. automatic1111: http://host:7860."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="openai: the server's model name.")] = None,
    api_key: Annotated[str | None, typer.Option(help="openai: the server's key, if any.")] = None,
    max_context: Annotated[int | None, typer.Option(help="llm: context window in tokens.")] = None,
    cost_per_1k_tokens: Annotated[
        str | None, typer.Option(help="llm: price charged per 1,000 tokens.")
    ] = None,
    cost_per_image: Annotated[str | None, typer.Option(help="sd: price charged per image.")] = None,
    settings: Annotated[
        str | None, typer.Option(help="More engine settings as JSON, e.g. '{\"parallel\": 4}'.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a model; its engine settings are checked first."""
    engine_settings = exit_on_error(lambda: _settings(path, base_url, model, api_key, settings))
    wrong_cost = cost_per_image if type is ModelType.LLM else cost_per_1k_tokens
    if wrong_cost is not None:
        err_console.print(
            "[red]error:[/red] --cost-per-1k-tokens is for llm, --cost-per-image for sd"
        )
        raise typer.Exit(1)
    cost = (cost_per_1k_tokens if type is ModelType.LLM else cost_per_image) or "0"
    created = run_in_session(
        lambda s: ModelService(s).register(type, name, engine, engine_settings, max_context, cost)
    )
    _show(created, as_json)


@models.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """Every registered model, enabled or not."""
    data = [model_dict(m) for m in run_in_session(lambda s: ModelService(s).list_all())]
    if as_json:
        print_json(data)
    else:
        columns = ["id", "type", "name", "engine", "enabled", "max_context", "cost"]
        print_table("models", columns, [[d[c] for c in columns] for d in data])


def _toggle(model_id: str, enabled: bool) -> Model:
    async def work(session: AsyncSession) -> Model:
        return await ModelService(session).set_enabled(model_id, enabled)

    return run_in_session(work)


@models.command("disable")
def disable(model_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Hide a model from the API (its conversations keep their history)."""
    _show(_toggle(model_id, False), as_json)


@models.command("enable")
def enable(model_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Offer a disabled model again."""
    _show(_toggle(model_id, True), as_json)


@models.command("remove")
def remove(model_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Delete a model; conversations that used it fall back to the default model."""
    run_in_session(lambda s: ModelService(s).remove(model_id))
    if as_json:
        print_json({"id": model_id, "removed": True})
    else:
        console.print(f"removed {model_id}", soft_wrap=True)


def _show(model: Model, as_json: bool) -> None:
    data = model_dict(model)
    if as_json:
        print_json(data)
    else:
        print_record("model", data)
