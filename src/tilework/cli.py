"""tilework: a self-hosted engine for video-editing agents.

Commands: serve, demo, run, agents, dispatch, gc, billing, orgs, workspaces, keys,
docs, migrate.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console

from tilework.config import Settings

if TYPE_CHECKING:
    from tilework.store.db import Database

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    pretty_exceptions_enable=False,
)
agents_app = typer.Typer(
    no_args_is_help=True, help="Manage agents on a running server."
)
keys_app = typer.Typer(
    no_args_is_help=True, help="Manage API keys in the data folder's store."
)
orgs_app = typer.Typer(no_args_is_help=True, help="Manage organizations in the store.")
workspaces_app = typer.Typer(
    no_args_is_help=True, help="Manage workspaces in the store."
)
app.add_typer(agents_app, name="agents")
app.add_typer(keys_app, name="keys")
app.add_typer(orgs_app, name="orgs")
billing_app = typer.Typer(no_args_is_help=True, help="Plans and checkouts.")
app.add_typer(billing_app, name="billing")
app.add_typer(workspaces_app, name="workspaces")

console = Console(stderr=True, soft_wrap=True)

ServerUrl = Annotated[
    str,
    typer.Option(
        "--url", envvar="TILEWORK_URL", help="Base URL of the tilework server."
    ),
]
ApiKeyOption = Annotated[
    str, typer.Option("--api-key", envvar="TILEWORK_API_KEY", help="API key (Bearer).")
]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind (TILEWORK_HOST, default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (TILEWORK_PORT, default 8000).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data folder (TILEWORK_DATA_DIR).")
    ] = None,
) -> None:
    """Run the API server with its embedded workers and webhook dispatcher."""
    import uvicorn

    from tilework.accounts import bootstrap
    from tilework.api.app import create_app
    from tilework.service import Tilework

    overrides: dict[str, Any] = {
        key: value
        for key, value in {"host": host, "port": port, "data_dir": data_dir}.items()
        if value is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    _check_port_free(settings.host, settings.port)
    tw = Tilework.build(settings)
    tw.db.migrate()
    first = bootstrap(
        tw.db, settings.data_dir, configured_key=settings.bootstrap_api_key
    )
    if first.api_key:
        console.print(
            f"[bold]Admin API key[/bold] (shown once, also kept in {first.key_file}):\n"
            f"  {first.api_key}"
        )
    console.print(
        f"tilework listening on {settings.base_url} (data in {settings.data_dir})"
    )
    uvicorn.run(
        create_app(tw),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


def _check_port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
            ) from None


@app.command()
def dispatch(
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Run only the webhook dispatcher, beside servers sharing one database.

    Several dispatchers (in servers or on their own) on one PostgreSQL never send
    the same attempt twice. Stops on SIGTERM or Ctrl-C.
    """
    import signal
    import threading

    from tilework.service import Tilework

    settings = _settings(data_dir)
    configure_logging(settings.log_level)
    tw = Tilework.build(settings, execute=False)
    tw.db.migrate()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tw.dispatcher.start()
    console.print(f"dispatching webhooks from {tw.db.engine.url.render_as_string()}")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    tw.dispatcher.stop()
    tw.db.dispose()


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Delete expired renders and uploads that no live run needs."""
    from tilework.media.storage import LocalStorage
    from tilework.retention import collect

    settings = _settings(data_dir)
    configure_logging(settings.log_level)
    result = collect(
        _database(data_dir),
        LocalStorage(settings.media_dir),
        settings.data_dir,
        dry_run=dry_run,
    )
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {len(result.renders)} renders and {len(result.uploads)} uploads; "
        f"kept {result.kept_for_live_runs} that live runs need; "
        f"freed {result.bytes_freed} bytes"
    )


@app.command()
def docs(
    out: Annotated[
        Path, typer.Option(help="Where to write the tile reference.")
    ] = Path("docs/tiles.md"),
) -> None:
    """Write the tile reference (Markdown) from the tiles' params models."""
    from tilework.tiles import docs as tile_docs
    from tilework.tiles.registry import all_tiles

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(tile_docs.render(all_tiles()), encoding="utf-8")
    typer.echo(f"wrote {out}")


@app.command()
def migrate(
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Bring the database schema up to date."""
    _database(data_dir)
    console.print("schema is up to date")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    scopes: Annotated[
        str | None, typer.Option(help="Comma-separated scopes; omit for full access.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Create an API key for the first organization and print it once."""
    from sqlalchemy import select

    from tilework.accounts import create_key
    from tilework.store.models import Organization

    db = _database(data_dir)
    scope_list = [s.strip() for s in scopes.split(",") if s.strip()] if scopes else None
    with db.write() as session:
        organization = session.scalars(
            select(Organization).order_by(Organization.created_at)
        ).first()
        if organization is None:
            raise typer.BadParameter(
                "No organization yet; start `tilework serve` once first."
            )
        _, plain = create_key(session, organization.id, name=name, scopes=scope_list)
    typer.echo(plain)


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Create an organization with a default workspace; print its ids and admin key."""
    from tilework.accounts import create_key, create_organization

    db = _database(data_dir)
    with db.write() as session:
        organization, workspace = create_organization(session, name)
        _, plain = create_key(session, organization.id, name="admin")
        ids = {"organization_id": organization.id, "workspace_id": workspace.id}
    typer.echo(json.dumps({**ids, "api_key": plain}))


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Argument(help="The workspace's name.")],
    organization: Annotated[
        str | None, typer.Option(help="Organization id; the first one when omitted.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Create a workspace in an organization and print its id."""
    from sqlalchemy import select

    from tilework.store.models import Organization, Workspace

    db = _database(data_dir)
    with db.write() as session:
        query = select(Organization).order_by(Organization.created_at)
        if organization:
            query = query.where(Organization.id == organization)
        owner = session.scalars(query).first()
        if owner is None:
            raise typer.BadParameter("No such organization.")
        workspace = Workspace(organization_id=owner.id, name=name)
        session.add(workspace)
        session.flush()
        typer.echo(workspace.id)


def _database(data_dir: Path | None) -> Database:
    from tilework.store.db import Database

    settings = _settings(data_dir)
    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


@billing_app.command("approve")
def billing_approve(
    checkout_id: Annotated[str, typer.Argument(help="The checkout to approve.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Approve a pending checkout: its plan becomes active with its credits."""
    from tilework.billing.checkout import approve
    from tilework.service import Tilework

    tw = Tilework.build(_settings(data_dir), execute=False)
    with tw.db.write() as session:
        found = approve(session, tw.ledger, checkout_id)
        typer.echo(f"checkout {found.id}: plan {found.plan_id} is active")


@billing_app.command("checkouts")
def billing_checkouts(
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """List the checkouts waiting for approval."""
    from sqlalchemy import select

    from tilework.store.models import Checkout

    db = _database(data_dir)
    with db.read() as session:
        pending = list(
            session.scalars(select(Checkout).where(Checkout.status == "pending"))
        )
        if not pending:
            typer.echo("no checkouts are waiting for approval")
        for row in pending:
            when = f"{row.created_at:%Y-%m-%d %H:%M}"
            typer.echo(f"{row.id}  {row.organization_id}  {row.plan_id}  {when}")


@billing_app.command("plans")
def billing_plans(
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Show the plan table."""
    from tilework.billing.plans import all_plans, plan_view, seed_plans

    db = _database(data_dir)
    with db.write() as session:
        seed_plans(session)
        typer.echo(json.dumps([plan_view(p) for p in all_plans(session)], indent=2))


@billing_app.command("set-plan")
def billing_set_plan(
    plan_id: Annotated[str, typer.Argument(help="Plan id; a new id adds a plan.")],
    price_usd: Annotated[float | None, typer.Option(help="Price a period.")] = None,
    credits: Annotated[
        int | None, typer.Option(help="Credits granted a month.")
    ] = None,
    billing: Annotated[str | None, typer.Option(help="monthly or annual.")] = None,
    top_up_rate: Annotated[
        float | None, typer.Option(help="USD per 100 top-up credits.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Edit a row of the plan table (or add one)."""
    from tilework.billing.plans import plan_view, seed_plans
    from tilework.store.models import Plan

    db = _database(data_dir)
    with db.write() as session:
        seed_plans(session)
        plan = session.get(Plan, plan_id) or Plan(id=plan_id, family=plan_id)
        session.add(plan)
        for field, value in (
            ("price_usd", price_usd),
            ("credits_per_month", credits),
            ("billing", billing),
            ("top_up_rate_per_100_credits_usd", top_up_rate),
        ):
            if value is not None:
                setattr(plan, field, value)
        session.flush()
        typer.echo(json.dumps(plan_view(plan)))


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir else Settings()


@agents_app.command("create")
def agents_create(
    file: Annotated[
        Path, typer.Argument(help="Agent file, YAML or JSON.", exists=True)
    ],
    url: ServerUrl = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = "",
) -> None:
    """Create an agent from a file describing its tiles and connections."""
    from tilework.client import Client, agent_from_file

    with Client(url, api_key) as client:
        body = agent_from_file(file)
        result = client.post("/agent/create", body)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def run(
    agent_id: Annotated[str, typer.Argument(help="The agent to run.")],
    videos: Annotated[list[str], typer.Argument(help="Video files or http(s) URLs.")],
    url: ServerUrl = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = "",
    callback_url: Annotated[
        str | None, typer.Option(help="Webhook URL for this run.")
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="Wait for the run and show progress.")
    ] = True,
) -> None:
    """Upload videos (or pass URLs), start a run, and follow it to the end."""
    from tilework.client import Client, follow_run

    with Client(url, api_key) as client:
        files = [v for v in videos if not v.startswith(("http://", "https://"))]
        links = [v for v in videos if v.startswith(("http://", "https://"))]
        if files and links:
            raise typer.BadParameter("give either files or URLs in one run, not both")
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
        body: dict[str, Any] = {"callback_url": callback_url} if callback_url else {}
        if files:
            body["video_ids"] = [client.upload(Path(f), "video") for f in files]
        else:
            body["video_urls"] = links
        run_id = client.post(f"/agent/{agent_id}/run", body)["run_id"]
        console.print(f"run {run_id} started")
        if not follow:
            typer.echo(run_id)
            return
        final = follow_run(client, run_id, console)
    typer.echo(json.dumps(final, indent=2))
    if final["status"] not in ("completed", "partial_complete"):
        raise typer.Exit(1)


@app.command()
def demo(
    keep: Annotated[
        bool, typer.Option(help="Keep serving after the run, until Ctrl-C.")
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the demo keeps its data.")
    ] = None,
) -> None:
    """Start a server and a webhook receiver, then run a three-tile agent on a clip."""
    from tilework.demo import run_demo

    raise typer.Exit(run_demo(data_dir=data_dir, keep=keep, console=console))


def main() -> None:
    """Run the command; known failures become one line on stderr and exit code 1."""
    from pydantic import ValidationError

    from tilework.client import ApiFailure
    from tilework.errors import TileworkError

    try:
        app()
    except ApiFailure as exc:
        _fail(f"the server refused: {exc}")
    except httpx.TransportError as exc:
        _fail(
            f"could not reach the server ({type(exc).__name__}: {exc}); is it running?"
        )
    except ValidationError as exc:
        _fail(f"a setting is not valid: {_first_error(exc)}")
    except (TileworkError, OSError, ValueError) as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise SystemExit(1)


def _first_error(exc: Any) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
