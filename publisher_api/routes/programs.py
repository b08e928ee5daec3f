"""`loyalty-program/list` and `loyalty-program/get`: the programs members can join."""

from __future__ import annotations

from fastapi import APIRouter

from ledger import programs
from publisher_api import pagination
from publisher_api.deps import MemberReader
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.schemas import ProgramGetRequest, ProgramListRequest, ProgramPage, ProgramPublic

router = APIRouter(prefix="/publisher.v1/loyalty-program", tags=["loyalty programs"])
KIND = "programs"


@router.post(
    "/list",
    summary="List the programs members can join",
    response_model=ProgramPage,
    responses={**ok_with_rate_limit(), **responses()},
)
async def list_programs(body: ProgramListRequest, caller: MemberReader) -> ProgramPage:
    """Active and paused programs, oldest first; archived and ended ones are left out.

    Programs are public: a member token lists them all."""
    limit = body.pagination.limit
    after = pagination.decode(KIND, body.pagination.cursor)
    page = await programs.list_programs(caller.reads, limit, after)
    data = [ProgramPublic.of(program) for program in page.items]
    return ProgramPage(data=data, page=pagination.page_info(KIND, page, limit))


@router.post(
    "/get",
    summary="Read one program",
    response_model=ProgramPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def get_program(body: ProgramGetRequest, caller: MemberReader) -> ProgramPublic:
    """A program by id; 404 when it is unknown, archived or ended."""
    program = await programs.get_program(caller.reads, body.id)
    return ProgramPublic.of(program)
