"""Funders' HTML reports: Jinja2 templates and plotly figures."""
