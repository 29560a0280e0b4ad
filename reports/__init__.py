"""Jinja2 templates of every report gradebench writes (HTML pages, Markdown summaries)."""
