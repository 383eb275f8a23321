"""`ragloop ask`, and how every CLI chat is asked: through the task queue the HTTP API uses.

`TaskService` is the one door for chat tasks, so a CLI question meets the same capacity check as
`POST /v1/chat` (refused up front when the queue is full) and is followed by the same wait.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.events import ChatOptions, ChatRequest, ChatTurn
from schemas.settings import get_settings
from schemas.tables import TERMINAL_TASK_STATES, TaskRecord
from streams.cli.options import PRINCIPAL_HELP, ApiKeyOption, TenantOption, acting_as, console
from streams.cli.runtime import in_process, run_with
from streams.outbox_relay import EventTooLarge
from streams.runtime import Runtime
from streams.tasks import QueueFull, TaskService, TokenHub

if TYPE_CHECKING:
    from streams.task_view import TaskOut

EX_TEMPFAIL = 75  # sysexits.h "try again later": the CLI's 503
POLL_S = 0.1  # no chat.responses listener here to wake the wait early: poll the row this often


def task_service(runtime: Runtime) -> TaskService:
    """The HTTP API's task queue over this command's runtime."""
    return TaskService(runtime.stores.tasks, runtime.stores.attempts, runtime.publisher, runtime.settings, TokenHub(), runtime.outbox)


async def answered(tasks: TaskService, request: ChatRequest, timeout: float) -> TaskRecord:
    """Submit `request` and wait until its task is finished; a full queue or no answer in time ends the command."""
    try:
        await tasks.submit(request)
    except QueueFull as full:
        console.print(f"[red]queue full[/]: {full}")
        raise typer.Exit(EX_TEMPFAIL) from None
    except EventTooLarge as too_large:
        console.print(f"[red]too large[/]: {too_large}")
        raise typer.Exit(1) from None
    task = await tasks.wait(request.task_id, timeout, poll_s=POLL_S)
    if task is None or task.status not in TERMINAL_TASK_STATES:
        console.print(f"no answer within {timeout:.0f}s (task {request.task_id})", markup=False)
        raise typer.Exit(1)
    return task


def ask(question: Annotated[str, typer.Argument(help="The question.")],
        tenant: TenantOption = "default",
        principal: Annotated[list[str] | None, typer.Option(help=PRINCIPAL_HELP)] = None,
        api_key: ApiKeyOption = None,
        retrieval: Annotated[bool, typer.Option(help="--no-retrieval answers from the model alone.")] = True,
        json_output: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 600) -> None:
    """Ask a question through the same path chat uses and print the answer with its citations."""
    from streams.task_view import TaskOut

    settings = get_settings()
    tenant, principals = acting_as(settings, tenant, principal, api_key)
    request = ChatRequest(tenant=tenant, principals=principals, messages=[ChatTurn(role="user", content=question)],
                          options=ChatOptions(retrieval=retrieval))

    async def send(runtime: Runtime) -> TaskOut:
        tasks = task_service(runtime)
        task = await answered(tasks, request, timeout)
        return TaskOut.of(task, await asyncio.to_thread(tasks.attempts.of, task.id))

    task = run_with(settings, in_process(settings, ["agent"]), send)
    if json_output:
        print(task.model_dump_json(indent=2))
        return
    if task.result is None:
        console.print(f"[red]{task.status}[/]: {task.error}")
        raise typer.Exit(1)
    print(task.result.answer)
    for n, citation in enumerate(task.result.citations, 1):
        console.print(f"  [{n}] {citation['document_id']} ({citation['chunk_id'][:12]}) {citation.get('title', '')}")
    console.print(f"model {task.result.model_version}")
