"""Operational endpoints (not rate-limited): liveness with a DB check, and the models' status."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.schemas import HealthOut, ModelStatusOut


def ops_router(ctx) -> APIRouter:
    """GET /health and GET /model-status."""
    router = APIRouter(tags=["ops"])
    services = ctx.services

    @router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
    def health():
        """200 when the database answers, else 503 (with Retry-After)."""
        try:
            with services.db.session() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse(
                {"status": "degraded", "database": "unavailable"},
                503,
                headers={"Retry-After": str(ctx.settings.api.retry_after_s)},
            )
        return HealthOut(status="ok", database="ok")

    @router.get("/model-status", response_model=ModelStatusOut)
    def model_status():
        """Whether the index and embedding model are loaded, and the generative backend's state."""
        rag = ctx.settings.rag
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
            current = chat_models.current()
            details["promoted"] = {k: current.get(k) for k in ("label", "origin", "promoted_at")} if current else None
        return ModelStatusOut(
            ready=services.ready.is_set() and services.startup_error is None,
            error=services.startup_error,
            answer_mode=getattr(services.engine, "answer_mode", rag.answer_mode),
            embedding_model=rag.embedding_model,
            details=details,
        )

    return router
