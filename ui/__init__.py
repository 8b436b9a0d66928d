"""Gradio user interface: `build_app(services)` assembles one module per tab."""

from __future__ import annotations

import gradio as gr

from ui.chat_tab import create_chat_tab


def build_app(services) -> gr.Blocks:
    """The whole MobiliaChat Blocks app."""
    with gr.Blocks(title="MobiliaChat — Assistance Free Mobile") as app:
        gr.Markdown("# MobiliaChat\nL'assistant du service client Free Mobile, disponible 24 h/24.")
        with gr.Tabs():
            with gr.Tab("💬 Assistance", id="chat"):
                create_chat_tab(services)
    return app
