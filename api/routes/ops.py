"""Operational endpoints (not rate-limited): liveness with a DB check, and the models' status (details: staff)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.schemas import ErrorOut, HealthOut, ModelStatusOut, StaffModelStatusOut


def ops_router(ctx) -> APIRouter:
    """GET /health and GET /model-status."""
    router = APIRouter(tags=["ops"])
    services = ctx.services

    @router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
    def health():
        """200 when the database answers (status "degraded" while Redis does not), else 503 (with Retry-After)."""
        cluster = getattr(services, "cluster", None)
        redis = cluster.health() if cluster is not None else "disabled"
        try:
            with services.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse(
                {"status": "degraded", "database": "unavailable", "redis": redis},
                503,
                headers={"Retry-After": str(ctx.settings.api.retry_after_s)},
            )
        # Without Redis this replica still answers customers (limits per process, social monitor paused).
        return HealthOut(status="degraded" if redis == "unavailable" else "ok", database="ok", redis=redis)

    def public_status() -> str:
        """ready | loading | unavailable: the knowledge base, then (generative modes) the LLM."""
        if services.startup_error is not None:
            return "unavailable"
        if not services.ready.is_set():
            return "loading"
        if getattr(services.engine, "answer_mode", ctx.settings.rag.answer_mode) == "extractive":
            return "ready"
        state = getattr(getattr(services.engine, "llm", None), "state", None)
        return {"ready": "ready", "loading": "loading", "off": "loading"}.get(state, "unavailable")

    @router.get("/model-status", response_model=StaffModelStatusOut | ModelStatusOut,
                responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})  # fmt: skip
    def model_status(request: Request):
        """Public: ready/loading/unavailable and the answer mode. With a staff bearer token: names, paths, errors."""
        rag = ctx.settings.rag
        answer_mode = getattr(services.engine, "answer_mode", rag.answer_mode)
        status = public_status()
        if not request.headers.get("authorization"):
            return ModelStatusOut(status=status, answer_mode=answer_mode)
        ctx.staff("models")(request)  # 401 / 403 for a bad token; details are for staff only
        details = {}
        llm = getattr(services.engine, "llm", None)
        if llm is not None:
            details["llm"] = {
                "state": getattr(llm, "state", None),
                "error": getattr(llm, "error", None),
                "backend": llm.config.backend,
                "adapter": llm.config.adapter,
                "load_seconds": getattr(llm, "load_seconds", None),
            }
        chat_models = getattr(services, "chat_models", None)
        if chat_models is not None:
            current = chat_models.applied  # what THIS replica serves (the database may be a few seconds ahead)
            details["promoted"] = {k: current.get(k) for k in ("label", "origin", "promoted_at")} if current else None
        engine = services.engine
        details["index_build"] = engine.index_build() if hasattr(engine, "index_build") else None
        details["answer_workers"] = engine.pool.alive if getattr(engine, "pool", None) is not None else 0
        cluster = getattr(services, "cluster", None)
        if cluster is not None:
            details["cluster"] = cluster.describe()
        return StaffModelStatusOut(
            status=status,
            answer_mode=answer_mode,
            ready=services.ready.is_set() and services.startup_error is None,
            error=services.startup_error,
            embedding_model=rag.embedding_model,
            details=details,
        )

    return router
