"""Journeys through the dashboard in a real browser (Playwright + Debian Chromium)."""
